"""Forward+backward time of each layer at the study's shapes (batch 128, float32).

Columns: minidl with its Numba kernels, minidl on the NumPy backend (the kernels' reference twins), and
PyTorch (2 threads) when it is importable; ratios are of medians measured in the same run. minidl's
inputs are stored images-last, as its layers pass images to each other; each layer runs the path it
chooses (Winograd for the 3x3 convolutions with 16 or more input channels). The element-wise rows (ReLU,
sigmoid, BCE from logits, one Adam step over one weight) come in sizes on both sides of the kernels'
one-thread thresholds (minidl/kernels/threads.py).

With ``--baseline DIR`` another column times the minidl of another checkout (e.g. ``git archive main``
unpacked into DIR) in its own processes, alternating with the others; ``--no-reference`` and
``--no-torch`` leave those columns out, and ``--threads N`` sets every thread pool of the minidl
workers (default: as the environment says).

    python benchmarks/bench_layers.py [--rounds 3] [--repeats 5] [--baseline DIR] [--threads N]
                                      [--no-reference] [--no-torch] [--only relu,adam]
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine, median_time, run_alternating, torch_available  # noqa: E402

BATCH = 128
THREAD_VARIABLES = ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
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
    # element-wise: (rows, columns) of a batch, or the numbers of a weight for Adam
    ("relu 64ch @28", "relu", 64, 64, 28),
    ("relu 128 units", "relu", 128, 128, 1),
    ("sigmoid 784", "sigmoid", 784, 784, 1),
    ("bce logits 128x784", "bce", 784, 784, 1),
    ("bce logits 256x784", "bce", 784, 784, 2),
    ("adam 143,360", "adam", 560, 256, 1),
    ("adam 294,912", "adam", 128 * 9, 256, 1),
]


def _chosen(only: str) -> list[tuple]:
    """The cases whose names begin with one of the comma-separated ``only`` (all when it is empty)."""
    beginnings = tuple(part.strip() for part in only.split(",") if part.strip())
    return [case for case in CASES if not beginnings or case[0].startswith(beginnings)]


def minidl_worker(repeats: int, use_reference: bool, cases: list[tuple]) -> dict[str, float]:
    import numpy as np

    from minidl.backend import set_backend
    from minidl.layers import Conv2D, Conv2DTranspose, Dense, MaxPool2D, ReLU, Sigmoid
    from minidl.layers.memory import as_images
    from minidl.losses import bce_with_logits
    from minidl.optim import Adam

    set_backend("numpy" if use_reference else "numba")
    rng = np.random.default_rng(0)
    results = {}
    for name, kind, c_in, c_out, size in cases:
        if kind in ("bce", "adam"):
            results[name] = median_time(_loss_or_update(kind, c_in, c_out, size, rng, bce_with_logits, Adam), repeats)
            continue
        if kind in ("relu", "sigmoid"):
            layer = ReLU() if kind == "relu" else Sigmoid()
            shape = (BATCH, c_in, size, size) if size > 1 else (BATCH, c_in)
        elif kind == "conv":
            layer, shape = Conv2D(c_in, c_out, 3, padding="same", rng=rng), (BATCH, c_in, size, size)
        elif kind == "convT":
            layer, shape = Conv2DTranspose(c_in, c_out, 3, stride=2, padding="same", rng=rng), (BATCH, c_in, size, size)
        elif kind == "pool":
            layer, shape = MaxPool2D(2), (BATCH, c_in, size, size)
        else:
            layer, shape = Dense(c_in, c_out, rng=rng), (BATCH, c_in)
        x = rng.standard_normal(shape).astype(np.float32)
        dy = rng.standard_normal((BATCH,) + layer.output_shape(shape[1:])).astype(np.float32)
        if len(shape) == 4:  # stored images-last, as the layers pass images to each other
            x = as_images(np.ascontiguousarray(x.transpose(1, 2, 3, 0)))
            dy = as_images(np.ascontiguousarray(dy.transpose(1, 2, 3, 0)))

        def step():
            layer.forward(x)
            layer.backward(dy)

        results[name] = median_time(step, repeats)
    return results


def _loss_or_update(kind, c_in, c_out, size, rng, bce_with_logits, Adam):
    """The step of a BCE row (``size`` batches of 128 logits of width ``c_in``) or of Adam on one weight."""
    import numpy as np

    if kind == "bce":
        logits = rng.standard_normal((BATCH * size, c_in)).astype(np.float32)
        target = rng.random((BATCH * size, c_in), dtype=np.float32)
        return lambda: bce_with_logits(logits, target)
    weight = rng.standard_normal(c_in * c_out).astype(np.float32)
    grad = rng.standard_normal(c_in * c_out).astype(np.float32)
    optimizer = Adam([("W", weight, grad)])
    return optimizer.step


def torch_worker(repeats: int, cases: list[tuple]) -> dict[str, float]:
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    generator = torch.Generator().manual_seed(0)
    results = {}
    for name, kind, c_in, c_out, size in cases:
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
        elif kind in ("relu", "sigmoid"):
            shape = (BATCH, c_in, size, size) if size > 1 else (BATCH, c_in)
            x = torch.randn(*shape, generator=generator, requires_grad=True)
            forward = (lambda: F.relu(x)) if kind == "relu" else (lambda: torch.sigmoid(x))  # noqa: E731
        elif kind == "bce":
            x = torch.randn(BATCH * size, c_in, generator=generator, requires_grad=True)
            target = torch.rand(BATCH * size, c_in, generator=generator)
            forward = lambda: F.binary_cross_entropy_with_logits(x, target)  # noqa: E731
        elif kind == "adam":
            weight = torch.nn.Parameter(torch.randn(c_in * c_out, generator=generator))
            weight.grad = torch.randn(c_in * c_out, generator=generator)
            results[name] = median_time(torch.optim.Adam([weight]).step, repeats)
            continue
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
    parser.add_argument("--baseline", default=None, help="another minidl checkout to time beside this one")
    parser.add_argument("--threads", type=int, default=None, help="threads of minidl's workers (Numba, OpenBLAS)")
    parser.add_argument("--no-reference", action="store_true", help="leave out the NumPy reference column")
    parser.add_argument("--no-torch", action="store_true", help="leave out the PyTorch column")
    parser.add_argument("--only", default="", help="comma-separated beginnings of row names, e.g. relu,adam")
    parser.add_argument("--worker", choices=["minidl", "baseline", "reference", "torch"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.repeats, _chosen(args.only))))
        return 0
    if args.worker:
        # first, before NumPy: minidl's thread-pool settings in its own worker processes only;
        # PyTorch's workers run as a PyTorch user's would (this parent process never imports minidl)
        import minidl

        minidl.tune_process()
        print(json.dumps(minidl_worker(args.repeats, args.worker == "reference", _chosen(args.only))))
        return 0

    workers = ["minidl"] + (["baseline"] if args.baseline else []) + ([] if args.no_reference else ["reference"])
    workers += ["torch"] if torch_available() and not args.no_torch else []
    threads = {} if args.threads is None else {name: str(args.threads) for name in THREAD_VARIABLES}
    environments = {worker: dict(threads) for worker in ("minidl", "baseline", "reference")}
    if args.baseline:  # the baseline worker imports minidl from the baseline checkout
        environments["baseline"]["PYTHONPATH"] = os.path.abspath(args.baseline)
    extra = ["--repeats", str(args.repeats), "--only", args.only]
    medians = run_alternating(os.path.abspath(__file__), workers, args.rounds, extra, environments)
    import numba
    from threadpoolctl import threadpool_info

    blas = ", ".join(f"{i['internal_api']} {i['num_threads']} threads" for i in threadpool_info())
    numba_threads = args.threads or numba.get_num_threads()
    print(f"Machine: {machine()}\n")
    print(
        f"batch {BATCH}, float32, forward+backward, median of {args.rounds} rounds x {args.repeats} repeats; "
        f"Numba {numba_threads} threads, {blas if args.threads is None else f'OpenBLAS {args.threads} threads'}"
        + ("; torch 2 threads" if "torch" in medians else "")
    )
    others = [worker for worker in ("baseline", "reference", "torch") if worker in medians]
    # the reference as a slowdown of minidl; the baseline and PyTorch as minidl's time over theirs
    ratios = {worker: ("reference / minidl" if worker == "reference" else f"minidl / {worker}") for worker in others}
    header = "| layer | minidl (ms) |" + "".join(f" {worker} (ms) | {ratios[worker]} |" for worker in others)
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, *_ in _chosen(args.only):
        fast = medians["minidl"][name]
        row = f"| {name} | {fast * 1e3:.3f} |"
        for worker in others:
            theirs = medians[worker][name]
            ratio = theirs / fast if worker == "reference" else fast / theirs
            row += f" {theirs * 1e3:.3f} | {ratio:.2f} |"
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
