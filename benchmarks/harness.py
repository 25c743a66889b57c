"""Shared measurement rules of the benchmarks.

* Each framework runs in its own process: PyTorch runs up to 2x slower in a process where OpenBLAS
  threads have already run, which would flatter our ratios.
* Processes alternate A B A B ... over several rounds and every figure is a median, because the
  machine is shared and has slow spells of 2-3x lasting whole runs.
* Inside a worker, the first calls (Numba compilation, allocator warm-up) are not timed.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable


def median_time(
    function: Callable[[], object], repeats: int, warmup: int = 2, clock: Callable[[], float] = time.perf_counter
) -> float:
    """Median time of ``function()`` in seconds, after ``warmup`` untimed calls.

    ``clock`` is wall time by default; ``time.process_time`` gives CPU time of all threads instead.
    """
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = clock()
        function()
        times.append(clock() - started)
    return statistics.median(times)


def run_alternating(
    script: str,
    workers: list[str],
    rounds: int,
    extra: list[str],
    environments: dict[str, dict[str, str]] | None = None,
) -> dict[str, dict]:
    """Run ``script --worker W`` for every worker, alternating, ``rounds`` times.

    Each worker prints one JSON object {case: seconds}; the result is {worker: {case: median}}.
    ``environments`` adds variables to the environment of the named workers' processes.
    """
    import os

    samples: dict[str, dict[str, list[float]]] = {worker: {} for worker in workers}
    for round_index in range(rounds):
        for worker in workers:
            print(f"  round {round_index + 1}/{rounds}: {worker}", file=sys.stderr, flush=True)
            env = {**os.environ, **environments[worker]} if environments and worker in environments else None
            output = subprocess.run(
                [sys.executable, script, "--worker", worker, *extra],
                check=True,
                capture_output=True,
                text=True,
                env=env,
            ).stdout
            for case, seconds in json.loads(output.strip().splitlines()[-1]).items():
                samples[worker].setdefault(case, []).append(seconds)
    return {
        worker: {case: statistics.median(values) for case, values in cases.items()} for worker, cases in samples.items()
    }


def machine() -> str:
    """The CPU model, its SIMD flags and the cores this process may use (Linux: /proc/cpuinfo)."""
    import os

    model, flags = "unknown CPU", []
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and model == "unknown CPU":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = [flag for flag in line.split(":", 1)[1].split() if flag.startswith(("avx", "fma", "sse4"))]
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{model}, {cores} cores; SIMD: {' '.join(flags) or 'unknown'}"


def torch_available() -> bool:
    try:
        import importlib.util

        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


def gemm_gflops(repeats: int = 5, clock: Callable[[], float] = time.perf_counter) -> float:
    """float32 GEMM throughput of NumPy's BLAS at a size like the conv layers' (GFLOP/s), timed by ``clock``."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.random((256, 1152), dtype=np.float32)
    b = rng.random((1152, 6272), dtype=np.float32)
    seconds = median_time(lambda: a @ b, repeats, clock=clock)
    return 2 * 256 * 1152 * 6272 / seconds / 1e9
