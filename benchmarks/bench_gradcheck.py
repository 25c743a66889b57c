"""Time of one gradient check of the same layer: minidl.testing against torch.autograd.gradcheck.

Cases: a dense layer and a 3x3 convolution, float64, checked for the input and every parameter.
minidl columns: ``assert_layer_gradients`` with ``tangents=0`` (backward only, what gradcheck checks),
with the tangent pass (default), and ``fast=True``. PyTorch columns (when torch is importable):
``gradcheck``, ``gradcheck(fast_mode=True)`` and ``gradgradcheck``. One thread each.

    python benchmarks/bench_gradcheck.py [--rounds 3] [--repeats 5] [--baseline DIR]

``--baseline DIR`` also times the minidl found in DIR (e.g. an earlier version exported with
``git archive``), alternating with this one in the same run: a before/after comparison on one machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# Checks of small layers are bound by call latency, not arithmetic: both frameworks run on one thread.
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(variable, "1")
import minidl  # noqa: E402

minidl.tune_process()  # first, before NumPy is imported
from harness import machine, median_time, run_alternating, torch_available  # noqa: E402

# name, kind, batch, in, out, size
CASES = [("dense 8->5, batch 4", "dense", 4, 8, 5, 1), ("conv 2->3 3x3 @6x6, batch 2", "conv", 2, 2, 3, 6)]


def minidl_worker(repeats: int) -> dict[str, float]:
    import numpy as np

    from minidl.layers import Conv2D, Dense
    from minidl.testing import assert_layer_gradients

    results = {}
    for name, kind, batch, c_in, c_out, size in CASES:
        rng = np.random.default_rng(0)
        if kind == "dense":
            layer, shape = Dense(c_in, c_out, rng=rng, dtype=np.float64), (batch, c_in)
        else:
            layer, shape = Conv2D(c_in, c_out, 3, padding="same", rng=rng, dtype=np.float64), (batch, c_in, size, size)
        x = rng.standard_normal(shape)
        for label, options in (
            ("backward only", dict(tangents=0)),
            ("with tangent pass", {}),
            ("fast", dict(tangents=0, fast=True)),
        ):
            results[f"{name} | minidl {label}"] = median_time(
                lambda: assert_layer_gradients(layer, x, **options), repeats
            )
    return results


def torch_worker(repeats: int) -> dict[str, float]:
    import numpy as np
    import torch
    from torch.autograd import gradcheck, gradgradcheck

    torch.set_num_threads(1)
    results = {}
    for name, kind, batch, c_in, c_out, size in CASES:
        rng = np.random.default_rng(0)
        if kind == "dense":
            shapes = [(batch, c_in), (c_out, c_in), (c_out,)]
            function = torch.nn.functional.linear
        else:
            shapes = [(batch, c_in, size, size), (c_out, c_in, 3, 3), (c_out,)]
            function = lambda x, w, b: torch.nn.functional.conv2d(x, w, b, padding=1)  # noqa: E731
        inputs = tuple(torch.tensor(rng.standard_normal(s), dtype=torch.float64, requires_grad=True) for s in shapes)
        results[f"{name} | torch gradcheck"] = median_time(lambda: gradcheck(function, inputs), repeats)
        results[f"{name} | torch gradcheck fast_mode"] = median_time(
            lambda: gradcheck(function, inputs, fast_mode=True), repeats
        )
        results[f"{name} | torch gradgradcheck"] = median_time(lambda: gradgradcheck(function, inputs), repeats)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", help="a directory holding another version of minidl to time alongside")
    parser.add_argument("--worker", choices=["minidl", "baseline", "torch"])
    args = parser.parse_args(argv)
    if args.worker in ("minidl", "baseline"):
        print(json.dumps(minidl_worker(args.repeats)))
        return
    if args.worker == "torch":
        print(json.dumps(torch_worker(args.repeats)))
        return
    workers = ["minidl"] + (["baseline"] if args.baseline else []) + (["torch"] if torch_available() else [])
    environments = {"baseline": {"PYTHONPATH": os.path.abspath(args.baseline)}} if args.baseline else None
    medians = run_alternating(
        os.path.abspath(__file__), workers, args.rounds, ["--repeats", str(args.repeats)], environments
    )
    print(f"{machine()}\n\n| case | check | median ms |\n|---|---|---|")
    for worker in workers:
        for key, seconds in medians[worker].items():
            case, check = key.split(" | ")
            label = check.replace("minidl", "minidl (baseline)") if worker == "baseline" else check
            print(f"| {case} | {label} | {seconds * 1e3:.1f} |")


if __name__ == "__main__":
    main()
