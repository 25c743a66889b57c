"""Training and inference speed of the study's models: minidl against PyTorch, side by side.

Prints, as Markdown tables (PyTorch columns only when torch is importable):
  1. one training step (forward, backward, Adam) at batch 128 of the plain, sparse and closed-form
     contractive models, and the achieved GFLOP/s as a fraction of a float32 GEMM measured in this run;
  2. the Hutchinson contractive step (1 probe) and the exact-Jacobian penalty, relative to the plain step;
  3. one epoch of the Frey Face VAE (1,769 images, batch 128);
  4. encoding 10,000 images (inference only);
  5. with --sweep: time per step against batch size (32, 64, 128, 256) and threads (1, 2);
  6. start-up: the first training step in a fresh process, Numba cache warm and empty;
  7. with --memory: peak resident memory of a paper-preset-sized MNIST training process.

Every figure is a median over rounds in which the frameworks run in separate processes, alternating.
With ``--baseline DIR`` a third column times the minidl of another checkout (e.g. the branch point,
``git worktree add DIR <commit>``), in its own processes, alternating with the other two.

    python benchmarks/bench_training.py [--rounds 3] [--repeats 5] [--sweep [--plot FILE.png]] [--memory]
                                        [--baseline DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
STARTED = time.perf_counter()
from harness import gemm_gflops, machine, median_time, run_alternating, torch_available  # noqa: E402

MFLOP_PER_IMAGE = 211.0  # forward + backward of the conv autoencoder (70.7 forward)
STEP_CASES = ("plain", "sparse", "closed_form", "hutchinson")


# -- minidl -------------------------------------------------------------------------------------


def minidl_model(case: str, seed: int = 0):
    from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder

    if case == "plain":
        return Autoencoder(rng=seed)
    if case == "sparse":
        return SparseAutoencoder(rng=seed)
    if case == "closed_form":
        return ContractiveAutoencoder(rng=seed, mode="closed_form")
    if case == "hutchinson":
        return ContractiveAutoencoder(rng=seed, mode="hutchinson", latent="linear")
    if case == "exact":
        return ContractiveAutoencoder(rng=seed, mode="exact", latent="linear")
    raise ValueError(case)


def minidl_worker(args) -> dict[str, float]:
    import numpy as np

    from autoencoders.models import VariationalAutoencoder
    from minidl.optim import Adam

    rng = np.random.default_rng(0)
    results = {}
    x = rng.random((args.batch, 1, 28, 28), dtype=np.float32)
    for case in args.cases.split(","):
        if case in STEP_CASES or case == "exact":
            model = minidl_model(case)
            optimizer = Adam(model.parameters())
            batch = x[:16] if case == "exact" else x

            def step():
                model.zero_grad()
                model.loss_and_grads(batch, rng)
                optimizer.step()

            repeats, warmup = (1, 1) if case == "exact" else (args.repeats, 2)
            results[case] = median_time(step, repeats, warmup, _clock(args))
        elif case == "vae_epoch":
            model = VariationalAutoencoder(rng=0)
            optimizer = Adam(model.parameters())
            faces = rng.random((1769, 1, 28, 20), dtype=np.float32)

            def epoch():
                for start in range(0, len(faces), 128):
                    model.zero_grad()
                    model.loss_and_grads(faces[start : start + 128], rng)
                    optimizer.step()

            results[case] = median_time(epoch, args.repeats, 1, _clock(args))
        elif case == "encode_10k":
            model = minidl_model("sparse")
            images = rng.random((10_000, 1, 28, 28), dtype=np.float32)
            results[case] = median_time(
                lambda: [model.encode(images[s : s + 500]) for s in range(0, 10_000, 500)],
                max(1, args.repeats // 2),
                1,
                _clock(args),
            )
        elif case == "first_step":
            model = minidl_model("plain")
            optimizer = Adam(model.parameters())
            model.zero_grad()
            model.loss_and_grads(x, rng)
            optimizer.step()
            results[case] = time.perf_counter() - STARTED
        elif case == "gemm":
            results["gemm_gflops"] = gemm_gflops(args.repeats, _clock(args))
    return results


# -- PyTorch ------------------------------------------------------------------------------------


def torch_worker(args) -> dict[str, float]:
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def encoder(latent):
        layers = []
        channels = 1
        for width in (64, 128, 256):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels = width
        layers += [nn.Flatten(), nn.Linear(2304, 128)] + ([nn.Sigmoid()] if latent == "sigmoid" else [])
        return nn.Sequential(*layers)

    def decoder():
        return nn.Sequential(
            nn.Linear(128, 2304),
            nn.ReLU(),
            nn.Unflatten(1, (256, 3, 3)),
            nn.ConvTranspose2d(256, 128, 3, 2, 1, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 3, 2, 1, 1),
            nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 3, 2, 1, 1),
            nn.Sigmoid(),
            nn.ZeroPad2d(2),
        )

    results = {}
    x = torch.rand(args.batch, 1, 28, 28)
    for case in args.cases.split(","):
        if case in STEP_CASES:
            enc, dec = encoder("linear" if case in ("plain", "hutchinson") else "sigmoid"), decoder()
            optimizer = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=1e-3)

            def step():
                optimizer.zero_grad()
                z = enc(x)
                loss = torch.mean((dec(z) - x) ** 2)
                if case == "sparse":
                    rho_hat = z.mean(0).clamp(1e-6, 1 - 1e-6)
                    loss = loss + 1e-3 * torch.sum(
                        0.05 * torch.log(0.05 / rho_hat) + 0.95 * torch.log(0.95 / (1 - rho_hat))
                    )
                elif case == "closed_form":
                    w = enc[-2].weight  # (128, 2304)
                    loss = loss + 1e-4 * torch.sum((z * (1 - z)) ** 2 * torch.sum(w**2, dim=1)) / len(x)
                elif case == "hutchinson":
                    v = torch.randn_like(x)
                    _, jv = torch.func.jvp(enc, (x,), (v,))
                    loss = loss + 1e-4 * torch.sum(jv**2) / len(x)
                loss.backward()
                optimizer.step()

            results[case] = median_time(step, args.repeats, clock=_clock(args))
        elif case == "vae_epoch":
            trunk, mu_head, logvar_head = (
                nn.Sequential(nn.Flatten(), nn.Linear(560, 256), nn.ReLU()),
                nn.Linear(256, 20),
                nn.Linear(256, 20),
            )
            dec = nn.Sequential(nn.Linear(20, 256), nn.ReLU(), nn.Linear(256, 560))
            params = [p for m in (trunk, mu_head, logvar_head, dec) for p in m.parameters()]
            optimizer = torch.optim.Adam(params, lr=1e-3)
            faces = torch.rand(1769, 1, 28, 20)

            def epoch():
                for start in range(0, len(faces), 128):
                    batch = faces[start : start + 128]
                    optimizer.zero_grad()
                    h = trunk(batch)
                    mu, logvar = mu_head(h), logvar_head(h)
                    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                    bce = nn.functional.binary_cross_entropy_with_logits(dec(z), batch.flatten(1), reduction="sum")
                    kl = -0.5 * torch.sum(1 + logvar - mu**2 - logvar.exp())
                    ((bce + kl) / len(batch)).backward()
                    optimizer.step()

            results[case] = median_time(epoch, args.repeats, 1, _clock(args))
        elif case == "encode_10k":
            enc = encoder("sigmoid")
            images = torch.rand(10_000, 1, 28, 28)

            def encode():
                with torch.no_grad():
                    return [enc(images[s : s + 500]) for s in range(0, 10_000, 500)]

            results[case] = median_time(encode, max(1, args.repeats // 2), 1, _clock(args))
        elif case == "first_step":
            enc, dec = encoder("linear"), decoder()
            optimizer = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()))
            torch.mean((dec(enc(x)) - x) ** 2).backward()
            optimizer.step()
            results[case] = time.perf_counter() - STARTED
    return results


# -- orchestration ------------------------------------------------------------------------------


def _worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in ("NUMBA_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


def _clock(args):
    """Wall time, or with --cpu-time the CPU time of all the process's threads."""
    return time.process_time if getattr(args, "cpu_time", False) else time.perf_counter


def _alternate(frameworks, cases, args, batch, threads) -> dict:
    os.environ.update(_worker_env(threads))
    extra = [
        "--cases",
        ",".join(cases),
        "--batch",
        str(batch),
        "--threads",
        str(threads),
        "--repeats",
        str(args.repeats),
    ]
    extra += ["--cpu-time"] if getattr(args, "cpu_time", False) else []
    return run_alternating(os.path.abspath(__file__), frameworks, args.rounds, extra, _environments(args))


def _environments(args) -> dict[str, dict[str, str]]:
    """The baseline worker imports minidl and autoencoders from the baseline checkout."""
    baseline = getattr(args, "baseline", None)
    return {"baseline": {"PYTHONPATH": os.path.abspath(baseline)}} if baseline else {}


def _others(medians: dict, case: str, ours: float, relative: bool = True) -> str:
    """The cells of the baseline and torch columns for one row: seconds and minidl / them."""
    cells = ""
    for name in ("baseline", "torch"):
        if name in medians:
            theirs = medians[name][case]
            cells += f" {theirs:.3f} |" + (f" {ours / theirs:.2f} |" if relative else "")
    return cells


def _other_headers(medians: dict, relative: bool = True) -> tuple[str, str]:
    names = [name for name in ("baseline", "torch") if name in medians]
    header = "".join(f" {name} (s) |" + (f" minidl / {name} |" if relative else "") for name in names)
    return header, "---|" * (len(names) * (2 if relative else 1))


def cold_start_seconds() -> float:
    """First training step of a fresh minidl process whose Numba cache directory is empty."""
    import tempfile

    previous = os.environ.get("NUMBA_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        try:
            result = run_alternating(
                os.path.abspath(__file__), ["minidl"], 1, ["--cases", "first_step", "--repeats", "1"]
            )
        finally:
            if previous is None:
                del os.environ["NUMBA_CACHE_DIR"]
            else:
                os.environ["NUMBA_CACHE_DIR"] = previous
    return result["minidl"]["first_step"]


def peak_memory_mb() -> float:
    """Peak RSS of a process that trains the paper-sized sparse model for 20 steps on 60,000 images."""
    code = (
        "import resource, numpy as np, minidl\n"
        "from autoencoders.models import SparseAutoencoder\n"
        "from autoencoders.trainer import Trainer, TrainingConfig\n"
        "x = np.random.default_rng(0).random((60000, 1, 28, 28), dtype=np.float32)\n"
        "t = Trainer(SparseAutoencoder(rng=0), TrainingConfig(epochs=1), progress=False)\n"
        "m = t.model; from minidl.optim import Adam; rng = np.random.default_rng(0)\n"
        "for s in range(20):\n"
        "    m.zero_grad(); m.loss_and_grads(x[s*128:(s+1)*128], rng); t.optimizer.step()\n"
        "t.evaluate(x[:10000]); t.encode(x[:10000])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return float(output.strip().splitlines()[-1])


def plot_sweep(sweep: dict, path: str) -> None:
    """Time per image against batch size, one line per framework and thread count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    batches = sorted({int(key.split("/")[0]) for key in sweep})
    for threads, style in ((1, "--"), (2, "-")):
        for name, colour in (("minidl", "tab:blue"), ("torch", "tab:orange")):
            times = [sweep[f"{batch}/{threads}"].get(name) for batch in batches]
            if None not in times:
                axis.plot(
                    batches,
                    [1e3 * t / b for t, b in zip(times, batches)],
                    style,
                    color=colour,
                    marker="o",
                    label=f"{name}, {threads} thread{'s' if threads > 1 else ''}",
                )
    axis.set_xscale("log", base=2)
    axis.set_xticks(batches, [str(b) for b in batches])
    axis.set_xlabel("batch size")
    axis.set_ylabel("ms per image (training step / batch)")
    axis.set_title("Plain conv autoencoder, one training step")
    axis.set_ylim(bottom=0)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sweep", action="store_true", help="batch sizes 32-256 and threads 1-2 (slow)")
    parser.add_argument("--plot", default=None, help="with --sweep: save the sweep as this PNG")
    parser.add_argument("--memory", action="store_true", help="peak RSS of a paper-sized training process")
    parser.add_argument("--baseline", default=None, help="another minidl checkout to time beside this one")
    parser.add_argument("--worker", choices=["minidl", "baseline", "torch"], help=argparse.SUPPRESS)
    parser.add_argument("--cases", default="", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=128, help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help="threads of every framework (default 2)")
    parser.add_argument(
        "--cpu-time",
        action="store_true",
        help="CPU time of all threads instead of wall time (with --threads 1: the figure least "
        "disturbed by other processes on a shared machine)",
    )
    parser.add_argument("--skip-startup", action="store_true", help="skip the start-up and exact-penalty timings")
    args = parser.parse_args(argv)
    if args.worker:
        if args.worker != "torch":
            # first, before NumPy: minidl's thread-pool settings in its own worker processes only;
            # PyTorch's workers run as a PyTorch user's would (this parent process never imports minidl)
            import minidl

            if hasattr(minidl, "tune_process"):  # a baseline checkout may tune on import instead
                minidl.tune_process()
        worker = torch_worker if args.worker == "torch" else minidl_worker
        print(json.dumps(worker(args)))
        return 0

    frameworks = ["minidl"] + (["baseline"] if args.baseline else []) + (["torch"] if torch_available() else [])
    has_torch = "torch" in frameworks
    cases = list(STEP_CASES) + ["vae_epoch", "encode_10k", "gemm"]
    medians = _alternate(frameworks, cases, args, 128, args.threads)
    ours, theirs = medians["minidl"], medians.get("torch", {})
    gemm = ours["gemm_gflops"]
    header, rule = _other_headers(medians)
    print(f"Machine: {machine()}\n")
    kind = "CPU time of all threads" if args.cpu_time else "wall time"
    print(
        f"## Training step, batch 128, {args.threads} thread(s), {kind} (median of {args.rounds} rounds x "
        f"{args.repeats} repeats)\n"
    )
    print("| model | minidl (s) | GFLOP/s | of GEMM peak |" + header)
    print("|---|---|---|---|" + rule)
    for case in STEP_CASES:
        gflops = MFLOP_PER_IMAGE * 128 / 1e3 / ours[case]
        # the Hutchinson step does more than the nominal 211 MFLOP per image: no rate for it
        rate = f"{gflops:.0f} | {gflops / gemm:.0%}" if case != "hutchinson" else "– | –"
        print(f"| {case} | {ours[case]:.3f} | {rate} |" + _others(medians, case, ours[case]))
    print(f"\nfloat32 GEMM (256x1152 @ 1152x6272) in the same run: {gemm:.0f} GFLOP/s\n")
    print("## Contractive penalties relative to the plain step (minidl)\n")
    print("| mode | step (s) | / plain step |" + (" torch (s) | torch / its plain step |" if has_torch else ""))
    print("|---|---|---|" + ("---|---|" if has_torch else ""))
    for case in ("closed_form", "hutchinson"):
        row = f"| {case} | {ours[case]:.3f} | {ours[case] / ours['plain']:.2f} |"
        if has_torch:
            row += f" {theirs[case]:.3f} | {theirs[case] / theirs['plain']:.2f} |"
        print(row)
    if not args.skip_startup:
        exact = _alternate(
            ["minidl"], ["plain", "exact"], argparse.Namespace(rounds=1, repeats=args.repeats), 16, args.threads
        )["minidl"]
        print(
            f"| exact (batch 16) | {exact['exact']:.2f} | {exact['exact'] / exact['plain']:.0f} (vs plain step at "
            "batch 16) |" + (" – | – |" if has_torch else "")
        )
    print("\n## VAE epoch and inference\n")
    print("| task | minidl (s) |" + header)
    print("|---|---|" + rule)
    for case, label in (("vae_epoch", "Frey VAE, one epoch (1,769 images)"), ("encode_10k", "encode 10,000 images")):
        print(f"| {label} | {ours[case]:.3f} |" + _others(medians, case, ours[case]))
    if not args.skip_startup:
        startup = run_alternating(
            os.path.abspath(__file__),
            frameworks,
            args.rounds,
            ["--cases", "first_step", "--repeats", "1"],
            _environments(args),
        )
        print("\n## Start-up: first training step in a fresh process (Numba cache warm)\n")
        print(" | ".join(f"{name}: {values['first_step']:.2f} s" for name, values in startup.items()))
        print(f"\nminidl with an empty Numba cache: {cold_start_seconds():.2f} s (the difference is compilation)")
    if args.sweep:
        print("\n## Time per step (s) against batch size and threads (plain model)\n")
        print("| batch | threads | minidl (s) |" + header)
        print("|---|---|---|" + rule)
        sweep = {}
        for threads in (1, 2):
            for batch in (32, 64, 128, 256):
                result = _alternate(frameworks, ["plain"], args, batch, threads)
                sweep[f"{batch}/{threads}"] = {name: values["plain"] for name, values in result.items()}
                mine = result["minidl"]["plain"]
                print(f"| {batch} | {threads} | {mine:.3f} |" + _others(result, "plain", mine), flush=True)
        print("\nSWEEP_JSON " + json.dumps(sweep))
        if args.plot:
            plot_sweep(sweep, args.plot)
            print(f"Plot: {args.plot}")
    if args.memory:
        print(f"\n## Memory\n\nPeak RSS of a paper-sized MNIST training process: {peak_memory_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
