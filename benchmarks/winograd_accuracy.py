"""float32 error of each convolution path against float64, at the study's Winograd-sized convolutions.

For conv 64->128 @14 and 128->256 @7 (batch 32, Glorot weights, inputs shaped like the network's:
non-negative, as after ReLU and max-pooling), runs the forward pass, the input gradient and the
weight gradient in float32 on the im2col path and on the Winograd path with F(2x2, 3x3) and
F(4x4, 3x3) tiles, and compares each with the same computation in float64:

    relative RMS error = ||r32 - r64|| / ||r64||,   max error = max |r32 - r64| / max |r64|.

    python benchmarks/winograd_accuracy.py [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minidl  # noqa: E402

minidl.tune_process()  # first, before NumPy is imported

CASES = [(64, 128, 14), (128, 256, 7)]
BATCH = 32


def results(layer, x, dy):
    import numpy as np

    layer.zero_grad()
    y = np.array(layer.forward(x))
    dx = np.array(layer.backward(dy))
    return {"y": y, "dx": dx, "dW": layer.grads["W"].copy()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    import numpy as np

    import minidl.layers.conv as conv_module
    from minidl.layers import Conv2D
    from minidl.winograd import F2X2_3X3, F4X4_3X3

    rng = np.random.default_rng(args.seed)
    print("| layer | path | y: RMS | y: max | dx: RMS | dx: max | dW: RMS | dW: max |")
    print("|---|---|---|---|---|---|---|---|")
    for c_in, c_out, size in CASES:
        x = np.maximum(rng.standard_normal((BATCH, c_in, size, size)), 0).astype(np.float32)
        dy = (rng.standard_normal((BATCH, c_out, size, size)) / (BATCH * c_out * size * size)).astype(np.float32)
        layer = Conv2D(c_in, c_out, 3, rng=rng, algorithm="im2col")
        exact = Conv2D(c_in, c_out, 3, dtype=np.float64, algorithm="im2col")
        exact.params["W"][...] = layer.params["W"]
        truth = results(exact, x.astype(np.float64), dy.astype(np.float64))
        for label, algorithm, transform in (
            ("im2col", "im2col", None),
            ("Winograd F(2x2,3x3)", "winograd", F2X2_3X3),
            ("Winograd F(4x4,3x3)", "winograd", F4X4_3X3),
        ):
            if transform is not None:
                conv_module.WINOGRAD = transform  # this process only: the layer's tile size
            layer.algorithm = algorithm
            measured = results(layer, x, dy)
            cells = []
            for key in ("y", "dx", "dW"):
                error = measured[key] - truth[key]
                cells.append(f"{np.linalg.norm(error) / np.linalg.norm(truth[key]):.1e}")
                cells.append(f"{np.abs(error).max() / np.abs(truth[key]).max():.1e}")
            print(f"| conv {c_in}->{c_out} @{size} | {label} | " + " | ".join(cells) + " |")
    print(f"\nfloat32 unit roundoff: {2.0**-24:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
