"""Where the time of a convolution layer goes: each phase of Conv2D's forward and backward, timed alone.

For the study's convolutions at batch 128 (float32), prints the median time of every step that
``minidl.layers.conv.Conv2D`` performs (im2col, the three matrix products, the layout copies,
col2im) and the GFLOP/s each matrix product reaches, beside a square-ish float32 GEMM measured in the
same process. It explains the layer rows of ``bench_layers.py``.

    python benchmarks/profile_conv.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minidl  # noqa: E402,F401  (first: its OpenBLAS setting must precede NumPy's import)
from harness import gemm_gflops, median_time  # noqa: E402

BATCH = 128
CASES = [(1, 64, 28), (64, 128, 14), (128, 256, 7)]  # in_channels, out_channels, size (3x3, "same")


def profile(c_in: int, c_out: int, size: int, repeats: int) -> list[tuple[str, float, float | None]]:
    """[(phase, seconds, GFLOP/s or None)] for one Conv2D(c_in, c_out, 3, padding="same")."""
    import numpy as np

    from minidl.kernels import col2im, im2col

    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, c_in, size, size), dtype=np.float32)
    dy = rng.standard_normal((BATCH, c_out, size, size), dtype=np.float32)
    W2 = rng.standard_normal((c_out, c_in * 9), dtype=np.float32)
    b = np.zeros(c_out, np.float32)
    columns = BATCH * size * size
    cols = np.empty((c_in * 9, columns), np.float32)
    y = np.empty_like(dy)
    dx = np.empty_like(x)
    flops = 2 * c_out * c_in * 9 * columns
    product = W2 @ cols
    dy2 = dy.transpose(1, 0, 2, 3).reshape(c_out, -1)
    dcols = W2.T @ dy2
    phases = [
        ("forward: im2col", lambda: im2col(x, 3, 3, 1, 1, 1, size, size, cols), None),
        ("forward: GEMM W2 @ cols", lambda: np.matmul(W2, cols, out=product), flops),
        ("forward: to (N, F, H, W) + bias", lambda: np.add(
            product.reshape(c_out, BATCH, size, size).transpose(1, 0, 2, 3), b[:, None, None], out=y), None),
        ("backward: dy to (F, N H W)", lambda: dy.transpose(1, 0, 2, 3).reshape(c_out, -1), None),
        ("backward: bias gradient", lambda: dy.sum(axis=(0, 2, 3)), None),
        ("backward: GEMM dW = dy2 @ cols.T", lambda: dy2 @ cols.T, flops),
        ("backward: GEMM dcols = W2.T @ dy2", lambda: np.matmul(W2.T, dy2, out=dcols), flops),
        ("backward: col2im", lambda: col2im(dcols, 3, 3, 1, 1, 1, size, size, dx), None),
    ]
    rows = []
    for name, function, work in phases:
        seconds = median_time(function, repeats)
        rows.append((name, seconds, work / seconds / 1e9 if work else None))
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    peak = gemm_gflops(args.repeats)
    print(f"float32 GEMM (256x1152 @ 1152x6272) in this process: {peak:.0f} GFLOP/s\n")
    for c_in, c_out, size in CASES:
        rows = profile(c_in, c_out, size, args.repeats)
        total = sum(seconds for _, seconds, _ in rows)
        print(f"### conv {c_in}->{c_out} @{size}, batch {BATCH}: {1e3 * total:.1f} ms in all\n")
        print("| phase | ms | share | GFLOP/s |")
        print("|---|---|---|---|")
        for name, seconds, gflops in rows:
            print(f"| {name} | {1e3 * seconds:.2f} | {seconds / total:.0%} | {'' if gflops is None else f'{gflops:.0f}'} |")
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
