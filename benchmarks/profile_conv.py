"""Where the time of a convolution layer goes: each phase of Conv2D's two paths, timed alone.

For the study's convolutions at batch 128 (float32), prints the median time of every step that
``minidl.layers.conv.Conv2D`` performs on its im2col path (im2col, the three matrix products, col2im)
and on its Winograd path (the tile transforms, the filter transform, the three sets of 36 products
over channels, and the adjoints), with the GFLOP/s each set of products reaches, beside a float32
GEMM measured in the same process. The inputs are stored images-last, as inside the network.
It explains the convolution rows of ``bench_layers.py`` and ``profile_step.py``.

    python benchmarks/profile_conv.py [--repeats 5] [--cpu-time]

``--cpu-time`` reports CPU time of all threads instead of wall time (see profile_step.py).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minidl  # noqa: E402

minidl.tune_process()  # first, before NumPy is imported
from harness import gemm_gflops, machine, median_time  # noqa: E402

BATCH = 128
CASES = [(1, 64, 28), (64, 128, 14), (128, 256, 7)]  # in_channels, out_channels, size (3x3, "same")


def im2col_phases(c_in: int, c_out: int, size: int):
    """[(phase, function, flops or None)] of the im2col path."""
    import numpy as np

    from minidl.kernels import col2im, im2col

    rng = np.random.default_rng(0)
    x = rng.standard_normal((c_in, size, size, BATCH), dtype=np.float32)  # images-last
    dY = rng.standard_normal((c_out, size * size * BATCH), dtype=np.float32)
    W_and_b = rng.standard_normal((c_out, c_in * 9 + 1), dtype=np.float32)
    cols = np.ones((c_in * 9 + 1, size * size * BATCH), np.float32)
    Y = np.empty((c_out, cols.shape[1]), np.float32)
    dcols = np.empty((c_in * 9, cols.shape[1]), np.float32)
    dx = np.empty_like(x)
    flops = 2 * c_out * c_in * 9 * cols.shape[1]
    return [
        ("forward: im2col", lambda: im2col(x, 3, 3, 1, 1, 1, size, size, cols[:-1]), None),
        ("forward: GEMM [W2 b] @ [cols; 1]", lambda: np.matmul(W_and_b, cols, out=Y), flops),
        ("backward: GEMM [dW2 db] = dY @ [cols; 1].T", lambda: dY @ cols.T, flops),
        ("backward: GEMM dcols = W2.T @ dY", lambda: np.matmul(W_and_b[:, :-1].T, dY, out=dcols), flops),
        ("backward: col2im", lambda: col2im(dcols, 3, 3, 1, 1, 1, size, size, dx), None),
    ]


def winograd_phases(c_in: int, c_out: int, size: int):
    """[(phase, function, flops or None)] of the Winograd path (the layer's WINOGRAD tiles)."""
    import numpy as np

    from minidl.kernels import (
        winograd_input_tiles,
        winograd_input_tiles_adjoint,
        winograd_output_tiles,
        winograd_output_tiles_adjoint,
    )
    from minidl.layers.conv import WINOGRAD
    from minidl.winograd import tile_grid, transform_weights, transform_weights_adjoint

    rng = np.random.default_rng(0)
    tiles_h, tiles_w = tile_grid(size, size, WINOGRAD.m)
    a, columns = WINOGRAD.tile, tiles_h * tiles_w * BATCH
    BT, AT = WINOGRAD.BT.astype(np.float32), WINOGRAD.AT.astype(np.float32)
    x = rng.standard_normal((c_in, size, size, BATCH), dtype=np.float32)
    dy = rng.standard_normal((c_out, size, size, BATCH), dtype=np.float32)
    W = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
    b, db = np.zeros(c_out, np.float32), np.empty(c_out, np.float32)
    V, dV = np.empty((a * a, c_in, columns), np.float32), np.empty((a * a, c_in, columns), np.float32)
    M = np.empty((a * a, c_out, columns), np.float32)
    U = transform_weights(W, WINOGRAD.G)
    dU = np.empty_like(U)
    y, dx = np.empty_like(dy), np.empty_like(x)
    flops = 2 * a * a * c_out * c_in * columns
    return [
        ("forward: input tiles B^T d B", lambda: winograd_input_tiles(x, BT, 1, 1, tiles_h, tiles_w, V), None),
        ("forward: filters G g G^T", lambda: transform_weights(W, WINOGRAD.G), None),
        (f"forward: {a * a} GEMMs U @ V", lambda: np.matmul(U, V, out=M), flops),
        ("forward: output tiles A^T M A + b", lambda: winograd_output_tiles(M, AT, b, y), None),
        ("backward: A dY A^T and db", lambda: winograd_output_tiles_adjoint(dy, AT, M, db), None),
        (f"backward: {a * a} GEMMs dU = dM @ V^T", lambda: np.matmul(M, V.transpose(0, 2, 1), out=dU), flops),
        ("backward: dW = G^T dU G", lambda: transform_weights_adjoint(dU, WINOGRAD.G), None),
        (f"backward: {a * a} GEMMs dV = U^T @ dM", lambda: np.matmul(U.transpose(0, 2, 1), M, out=dV), flops),
        (
            "backward: input tiles B dV B^T",
            lambda: winograd_input_tiles_adjoint(dV, BT, 1, 1, tiles_h, tiles_w, dx),
            None,
        ),
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cpu-time", action="store_true", help="CPU time of all threads instead of wall time")
    args = parser.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    peak = gemm_gflops(args.repeats)
    print(f"Machine: {machine()}\n")
    print(
        f"float32 GEMM (256x1152 @ 1152x6272) in this process: {peak:.0f} GFLOP/s (wall); "
        f"{'CPU time of all threads' if args.cpu_time else 'wall time'}\n"
    )
    for c_in, c_out, size in CASES:
        for path, phases in (("im2col", im2col_phases), ("winograd", winograd_phases)):
            rows = [
                (name, median_time(function, args.repeats, warmup=1, clock=clock), work)
                for name, function, work in phases(c_in, c_out, size)
            ]
            total = sum(seconds for _, seconds, _ in rows)
            print(f"### conv {c_in}->{c_out} @{size}, batch {BATCH}, {path} path: {1e3 * total:.1f} ms in all\n")
            print("| phase | ms | share | GFLOP/s |")
            print("|---|---|---|---|")
            for name, seconds, work in rows:
                rate = "" if work is None else f"{work / seconds / 1e9:.0f}"
                print(f"| {name} | {1e3 * seconds:.2f} | {seconds / total:.0%} | {rate} |")
            print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
