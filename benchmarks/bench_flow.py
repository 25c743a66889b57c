"""What the gradient-flow recorder costs per training step: ``FlowRecorder.before_step`` and ``after_step``
timed around every optimizer step, against the rest of the step (forward, backward, Adam), for the study's
conv autoencoders at batch 128 and the Frey Face VAE.

    .venv/bin/python benchmarks/bench_flow.py                 # wall time, threads as the environment sets
    .venv/bin/python benchmarks/bench_flow.py --threads 1 --cpu-time

Prints a Markdown table of medians. The recorder runs NumPy on one thread: against a step on two threads
its share is about twice its share of a one-thread step.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def measure(model, image_shape: tuple[int, ...], steps: int, clock) -> tuple[float, float]:
    """Medians (s) of the step without the recorder and of the recorder, over ``steps`` steps after 5 warm-up ones."""
    import numpy as np

    from minidl.flow import FlowRecorder
    from minidl.optim import Adam

    optimizer = Adam(model.parameters(), lr=1e-3)
    recorder = FlowRecorder(optimizer.parameters, model.networks)
    rng = np.random.default_rng(0)
    x = rng.random((128,) + image_shape, dtype=np.float32)
    work, recording = [], []
    for step in range(steps + 5):
        started = clock()
        model.zero_grad()
        model.loss_and_grads(x, rng)
        before = clock()
        recorder.before_step()
        middle = clock()
        optimizer.step()
        after = clock()
        recorder.after_step()
        ended = clock()
        if step >= 5:
            work.append((before - started) + (after - middle))
            recording.append((middle - before) + (ended - after))
    return float(np.median(work)), float(np.median(recording))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="threads of Numba and the BLAS (set before import)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time")
    args = parser.parse_args(argv)
    if args.threads is not None:
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
            os.environ[name] = str(args.threads)
    import minidl

    minidl.tune_process()  # first, before NumPy is imported, as for training
    from autoencoders import VariationalAutoencoder
    from experiments.mnist import build_model
    from experiments.presets import get_preset

    clock = time.process_time if args.cpu_time else time.perf_counter
    models = {
        kind: (lambda kind=kind: build_model(kind, get_preset("quick")), (1, 28, 28))
        for kind in ("plain", "sparse", "contractive")
    }
    models["VAE (Bernoulli)"] = (lambda: VariationalAutoencoder(rng=0), (1, 28, 20))
    print(
        f"{'CPU' if args.cpu_time else 'wall'} time, {os.environ.get('NUMBA_NUM_THREADS', 'default')} thread(s), "
        f"batch 128, medians of {args.steps} steps\n"
    )
    print("| model | step without the recorder (ms) | recorder (ms) | share |")
    print("|---|---|---|---|")
    for name, (build, image_shape) in models.items():
        work, recording = measure(build(), image_shape, args.steps, clock)
        print(f"| {name} | {work * 1e3:.1f} | {recording * 1e3:.2f} | {recording / work:.1%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
