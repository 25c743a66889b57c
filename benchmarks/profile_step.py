"""Where the time of one training step goes: every layer's forward and backward inside the real step.

Runs ``model.zero_grad(); model.loss_and_grads(x, rng); optimizer.step()`` at batch 128 (float32) and
times each phase inside it: every layer's forward, backward and tangent passes, the losses, the
optimizer and ``zero_grad``. Beside each time it prints the minor page faults of that phase: a fresh
array too large for the allocator's heap (over 32 MiB with glibc) is mapped afresh by every call and
costs page faults the first time it is written. "other" is the step's time outside all these phases
(Python glue, the penalty's own arithmetic).

    python benchmarks/profile_step.py [--model plain] [--repeats 10] [--cpu-time]

``--model vae`` profiles one step of the Frey Face VAE (batch of 28x20 images) instead.

With ``--cpu-time`` every figure is CPU time (all threads added up) instead of wall time: with one
thread (NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1) that is the measure least disturbed by other
processes on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import minidl  # noqa: E402

minidl.tune_process()  # first, before NumPy is imported
from bench_training import minidl_model  # noqa: E402
from harness import median_time  # noqa: E402


class PhaseClock:
    """Accumulates time (wall or CPU) and minor page faults per named phase."""

    def __init__(self, clock=time.perf_counter) -> None:
        self.clock = clock
        self.seconds: dict[str, float] = {}
        self.faults: dict[str, int] = {}
        self.order: list[str] = []

    def wrap(self, function, name: str):
        def timed(*args, **kwargs):
            faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            started = self.clock()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(name, self.clock() - started, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults)

        return timed

    def add(self, name: str, seconds: float, faults: int) -> None:
        if name not in self.seconds:
            self.order.append(name)
            self.seconds[name], self.faults[name] = 0.0, 0
        self.seconds[name] += seconds
        self.faults[name] += faults

    def reset(self) -> None:
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.faults = dict.fromkeys(self.faults, 0)


def instrument(model, optimizer, clock: PhaseClock) -> None:
    """Replace, on this model's objects only, every layer pass, loss and update by a timed wrapper."""
    import autoencoders.models as models_module

    for prefix, network in model.networks.items():
        layers = getattr(network, "layers", [network])
        names = getattr(network, "names", [prefix])
        for name, layer in zip(names, layers):
            for method in ("forward", "backward", "jvp", "jvp_backward"):
                setattr(layer, method, clock.wrap(getattr(layer, method), f"{prefix}.{name} {method}"))
    for loss in ("mse", "kl_sparsity", "elbo"):
        setattr(models_module, loss, clock.wrap(getattr(models_module, loss), f"loss: {loss}"))
    optimizer.step = clock.wrap(optimizer.step, "optimizer: Adam")
    model.zero_grad = clock.wrap(model.zero_grad, "zero_grad")


def profile(
    case: str, repeats: int, batch: int, clock=time.perf_counter
) -> tuple[list[tuple[str, float, float]], float, float]:
    """[(phase, ms per step, page faults per step)], ms per instrumented step, ms per plain step."""
    import numpy as np

    from minidl.optim import Adam

    rng = np.random.default_rng(0)
    if case == "vae":
        from autoencoders.models import VariationalAutoencoder

        x, model = rng.random((batch, 1, 28, 20), dtype=np.float32), VariationalAutoencoder(rng=0)
    else:
        x, model = rng.random((batch, 1, 28, 28), dtype=np.float32), minidl_model(case)
    optimizer = Adam(model.parameters())

    def step():
        model.zero_grad()
        model.loss_and_grads(x, rng)
        optimizer.step()

    plain = median_time(step, repeats, warmup=2, clock=clock)

    phases = PhaseClock(clock)
    instrument(model, optimizer, phases)
    step()
    phases.reset()
    total, total_faults = 0.0, 0
    for _ in range(repeats):
        faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        started = clock()
        step()
        total += clock() - started
        total_faults += resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    rows = [(name, 1e3 * phases.seconds[name] / repeats, phases.faults[name] / repeats) for name in phases.order]
    rows.append(
        (
            "other (glue, penalty arithmetic)",
            1e3 * total / repeats - sum(r[1] for r in rows),
            total_faults / repeats - sum(r[2] for r in rows),
        )
    )
    return rows, 1e3 * total / repeats, 1e3 * plain


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="plain", choices=["plain", "sparse", "closed_form", "hutchinson", "vae"])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--cpu-time", action="store_true", help="CPU time of all threads instead of wall time")
    args = parser.parse_args(argv)
    from harness import gemm_gflops, machine

    peak = gemm_gflops(5)
    rows, instrumented, plain = profile(
        args.model, args.repeats, args.batch, time.process_time if args.cpu_time else time.perf_counter
    )
    kind = "CPU time of all threads" if args.cpu_time else "wall time"
    print(f"Machine: {machine()}\n")
    print(
        f"{args.model} model, batch {args.batch}, float32, {kind}, mean of {args.repeats} steps; "
        f"{os.environ.get('NUMBA_NUM_THREADS', 'all')} Numba / {os.environ.get('OPENBLAS_NUM_THREADS', 'all')} "
        f"OpenBLAS threads; float32 GEMM in this process {peak:.0f} GFLOP/s (wall)\n"
    )
    print(f"step: {plain:.1f} ms (median, not instrumented); {instrumented:.1f} ms instrumented\n")
    print("| phase | ms | share | page faults |")
    print("|---|---|---|---|")
    for name, ms, faults in rows:
        print(f"| {name} | {ms:.2f} | {ms / instrumented:.0%} | {faults:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
