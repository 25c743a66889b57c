"""Forward+backward time of each layer at the study's shapes (batch 128, float32).

Columns: minidl with its Numba kernels, minidl on the NumPy backend (the kernels' reference twins), and
PyTorch (2 threads) when it is importable; ratios are of medians measured in the same run. minidl's
inputs are stored images-last, as its layers pass images to each other; each layer runs the path it
chooses (Winograd for the 3x3 convolutions with 16 or more input channels).

    python benchmarks/bench_layers.py [--rounds 3] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine, median_time, run_alternating, torch_available  # noqa: E402

BATCH = 128
# name, kind, in_channels, out_channels, size
CASES = [
    ("conv 1->64 @28", "conv", 1, 64, 28),
    ("conv 64->128 @14", "conv", 64, 128, 14),
    ("conv 128->256 @7", "conv", 128, 256, 7),
    ("convT 256->128 @3", "convT", 256, 128, 3),
    ("convT 128->64 @6", "convT", 128, 64, 6),
    ("convT 64->1 @12", "convT", 64, 1, 12),
    ("pool 64ch @28", "pool", 64, 64, 28),
    ("pool 128ch @14", "pool", 128, 128, 14),
    ("pool 256ch @7", "pool", 256, 256, 7),
    ("dense 2304->128", "dense", 2304, 128, 1),
    ("dense 128->2304", "dense", 128, 2304, 1),
]


def minidl_worker(repeats: int, use_reference: bool) -> dict[str, float]:
    import numpy as np

    from minidl.backend import set_backend
    from minidl.layers import Conv2D, Conv2DTranspose, Dense, MaxPool2D
    from minidl.layers.memory import as_images

    set_backend("numpy" if use_reference else "numba")
    rng = np.random.default_rng(0)
    results = {}
    for name, kind, c_in, c_out, size in CASES:
        if kind == "conv":
            layer, shape = Conv2D(c_in, c_out, 3, padding="same", rng=rng), (BATCH, c_in, size, size)
        elif kind == "convT":
            layer, shape = Conv2DTranspose(c_in, c_out, 3, stride=2, padding="same", rng=rng), (BATCH, c_in, size, size)
        elif kind == "pool":
            layer, shape = MaxPool2D(2), (BATCH, c_in, size, size)
        else:
            layer, shape = Dense(c_in, c_out, rng=rng), (BATCH, c_in)
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal((BATCH,) + layer.output_shape(shape[1:])).astype(np.float32)
        if kind != "dense":  # stored images-last, as the layers pass images to each other
            x = as_images(np.ascontiguousarray(x.transpose(1, 2, 3, 0)))
            dy = as_images(np.ascontiguousarray(dy.transpose(1, 2, 3, 0)))

        def step():
            layer.forward(x)
            layer.backward(dy)

        results[name] = median_time(step, repeats)
    return results


def torch_worker(repeats: int) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    results = {}
    for name, kind, c_in, c_out, size in CASES:
        if kind == "conv":
            x = torch.randn(BATCH, c_in, size, size, generator=generator, requires_grad=True)
            w = torch.randn(c_out, c_in, 3, 3, generator=generator, requires_grad=True)
            b = torch.zeros(c_out, requires_grad=True)
            forward = lambda: F.conv2d(x, w, b, padding=1)  # noqa: E731
        elif kind == "convT":
            x = torch.randn(BATCH, c_in, size, size, generator=generator, requires_grad=True)
            w = torch.randn(c_in, c_out, 3, 3, generator=generator, requires_grad=True)
            b = torch.zeros(c_out, requires_grad=True)
            forward = lambda: F.conv_transpose2d(x, w, b, stride=2, padding=1, output_padding=1)  # noqa: E731
        elif kind == "pool":
            x = torch.randn(BATCH, c_in, size, size, generator=generator, requires_grad=True)
            forward = lambda: F.max_pool2d(x, 2)  # noqa: E731
        else:
            x = torch.randn(BATCH, c_in, generator=generator, requires_grad=True)
            w = torch.randn(c_out, c_in, generator=generator, requires_grad=True)
            b = torch.zeros(c_out, requires_grad=True)
            forward = lambda: F.linear(x, w, b)  # noqa: E731
        dy = torch.randn(forward().shape, generator=generator)

        def step():
            forward().backward(dy)

        results[name] = median_time(step, repeats)
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--worker", choices=["minidl", "reference", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.repeats)))
        return 0
    if args.worker:
        # first, before NumPy: minidl's thread-pool settings in its own worker processes only;
        # PyTorch's workers run as a PyTorch user's would (this parent process never imports minidl)
        import minidl

        minidl.tune_process()
        print(json.dumps(minidl_worker(args.repeats, use_reference=args.worker == "reference")))
        return 0

    workers = ["minidl", "reference"] + (["torch"] if torch_available() else [])
    medians = run_alternating(os.path.abspath(__file__), workers, args.rounds, ["--repeats", str(args.repeats)])
    import numba
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    print(f"Machine: {machine()}\n")
    print(
        f"batch {BATCH}, float32, forward+backward, median of {args.rounds} rounds x {args.repeats} repeats; "
        f"Numba {numba.get_num_threads()} threads, {blas}" + ("; torch 2 threads" if "torch" in medians else "")
    )
    header = "| layer | minidl (ms) | NumPy reference (ms) | reference / minidl |"
    if "torch" in medians:
        header += " torch (ms) | minidl / torch |"
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, *_ in CASES:
        fast, slow = medians["minidl"][name], medians["reference"][name]
        row = f"| {name} | {fast * 1e3:.2f} | {slow * 1e3:.2f} | {slow / fast:.2f} |"
        if "torch" in medians:
            row += f" {medians['torch'][name] * 1e3:.2f} | {fast / medians['torch'][name]:.2f} |"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
