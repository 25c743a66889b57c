"""Page faults per training step, with and without :func:`minidl.tune_process`'s allocator setting.

A step frees and reallocates arrays of tens of megabytes; glibc's default allocator hands them back to the
system and maps them afresh, paying a page fault on the first write to every page. Each case runs in its
own process (the setting is process-wide), alternating A B A B, and prints the median over rounds of the
minor page faults per step of the study's sparse autoencoder at batch 128 (after two warm-up steps).

    python benchmarks/page_faults.py [--rounds 3] [--steps 6]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import machine  # noqa: E402

WORKER = """
import json, resource, sys
import minidl
if sys.argv[1] == "tuned":
    minidl.tune_process()
import numpy as np
from autoencoders import SparseAutoencoder
from minidl.optim import Adam

faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rng = np.random.default_rng(0)
model = SparseAutoencoder(rng=0)
optimizer = Adam(model.parameters(), lr=1e-3)
x = rng.random((128, 1, 28, 28), dtype=np.float32)
for step in range(2 + int(sys.argv[2])):
    if step == 2:
        start = faults()
    model.zero_grad()
    model.loss_and_grads(x, rng)
    optimizer.step()
print(json.dumps((faults() - start) / int(sys.argv[2])))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args(argv)
    environment = {name: value for name, value in os.environ.items() if not name.startswith("MALLOC_")}
    results: dict[str, list[float]] = {"default": [], "tuned": []}
    for _ in range(args.rounds):
        for case in results:
            output = subprocess.run(
                [sys.executable, "-c", WORKER, case, str(args.steps)],
                capture_output=True,
                text=True,
                check=True,
                env=environment,
            ).stdout
            results[case].append(json.loads(output))
    print(machine())
    print("\n| allocator | minor page faults per step (median) |\n|---|---|")
    for case, values in results.items():
        label = "glibc's default" if case == "default" else "minidl.tune_process()"
        print(f"| {label} | {statistics.median(values):,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
