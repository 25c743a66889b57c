"""The main job's command line as a new user meets it: offline first, real data later, settings from the
command line, and clear one-line errors for bad folders and files. Data is small random arrays in place of
MNIST and Frey Face (see ``new_user``), so nothing here needs the real files or the network."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from experiments import datasets, pipeline


@pytest.fixture
def new_user(tmp_path, monkeypatch):
    """A fresh machine: the working directory is tmp_path, the cache is empty, MINIDL_DATA is unset and
    nothing can be downloaded. Returns a function ``data(mnist_found, frey_found)`` that makes each dataset
    found (small random arrays in its place, so that no test needs the real files) or unavailable."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("MINIDL_DATA", raising=False)

    def no_network(*args, **kwargs):
        raise datasets.DatasetError("no network (test)")

    monkeypatch.setattr(datasets, "download", no_network)
    rng = np.random.default_rng(0)
    mnist = (
        rng.random((300, 1, 28, 28), dtype=np.float32),
        rng.integers(0, 10, 300).astype(np.uint8),
        rng.random((150, 1, 28, 28), dtype=np.float32),
        rng.integers(0, 10, 150).astype(np.uint8),
    )
    faces = rng.random((120, 1, 28, 20), dtype=np.float32)

    def data(mnist_found: bool = True, frey_found: bool = True) -> None:
        def loader(found, value, name):
            def load(data_dir=None, *args, **kwargs):
                if data_dir is not None or not found:  # through the real search for a named folder
                    return real[name](data_dir, *args, **kwargs)
                return value

            return load

        monkeypatch.setattr(datasets, "load_mnist", loader(mnist_found, mnist, "mnist"))
        monkeypatch.setattr(datasets, "load_frey_faces", loader(frey_found, faces, "frey"))

    real = {"mnist": datasets.load_mnist, "frey": datasets.load_frey_faces}
    data(False, False)
    return data


FAST = ["--preset", "smoke", "--models", "plain", "--no-progress"]


def run(*args):
    return pipeline.main(list(args) + FAST)


def metrics(folder) -> dict:
    return json.loads((Path(folder) / "metrics.json").read_text())


def one_line_error(capsys, *expected):
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert str(text) in err, (text, err)


# -- offline first, real data later (fingerprints and provenance) ----------------------------------


def test_offline_then_online_retrains_on_the_real_data_in_its_own_folder(new_user, capsys):
    assert run("run") == 0
    assert "OFFLINE STAND-IN" in capsys.readouterr().err
    offline = metrics("runs/smoke-stand-in")
    new_user(mnist_found=True, frey_found=True)
    assert run("run") == 0
    assert "STAND-IN" not in capsys.readouterr().err
    online = metrics("runs/smoke")
    assert online["run"]["stand_in"] is False and online["run"]["data_source"] == "MNIST; Frey Face"
    assert online["mnist"]["plain"]["provenance"]["data"]["source"] == "MNIST"
    assert online["frey"]["bernoulli"]["provenance"]["data"]["source"] == "Frey Face"
    assert online["mnist"]["plain"]["test_mse"] != offline["mnist"]["plain"]["test_mse"]
    assert online["frey"]["gaussian"]["n_train"] == 108 and offline["frey"]["bernoulli"]["n_train"] == 1617
    report = Path("runs/smoke/report.md").read_text()
    assert "WARNING" not in report and "| Plain AE (linear latent) | MNIST | 300 images" not in report
    assert "| Plain AE (linear latent) | MNIST | 256 images, sha256 `" in report
    assert "| Frey Face VAE, Gaussian decoder | Frey Face | 108 images, sha256 `" in report
    assert metrics("runs/smoke-stand-in") == offline  # the stand-in results stay as they were, apart


def test_a_part_on_the_stand_in_gets_a_folder_of_its_own_and_is_named(new_user, capsys):
    new_user(mnist_found=True, frey_found=False)
    assert run("run") == 0
    err = capsys.readouterr().err
    assert (
        "WARNING: frey/bernoulli, frey/gaussian in runs/smoke-frey-stand-in were trained on the OFFLINE STAND-IN"
    ) in err
    values = metrics("runs/smoke-frey-stand-in")
    assert values["run"]["data_source"] == "MNIST; offline stand-in: digits cropped to 28x20"
    report = Path("runs/smoke-frey-stand-in/report.md").read_text()
    assert "> **WARNING: frey/bernoulli, frey/gaussian were trained and evaluated on the offline stand-in" in report
    assert "| Frey Face VAE, Bernoulli decoder | offline stand-in: digits cropped to 28x20 (**stand-in**) |" in report
    before = Path("runs/smoke-frey-stand-in/metrics.json").read_bytes()
    assert run("frey") == 0  # a part alone goes to the folder of its kind of data, whole stand-in here
    assert "frey" in metrics("runs/smoke-stand-in") and "mnist" not in metrics("runs/smoke-stand-in")
    assert Path("runs/smoke-frey-stand-in/metrics.json").read_bytes() == before


def test_an_explicit_out_with_other_data_is_refused_and_can_be_moved_aside(new_user, tmp_path, capsys):
    out = tmp_path / "mine"
    assert run("run", "--out", str(out)) == 0
    before = (out / "metrics.json").read_bytes()
    capsys.readouterr()
    new_user(mnist_found=True, frey_found=True)
    assert run("run", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert f"{out} holds results made from other data or settings, so nothing was run" in err
    assert (
        "MNIST mean-image reference, MNIST plain: data.source: offline stand-in: scikit-learn digits resized "
        "to 28x28 -> MNIST; data.stand_in: true -> false; data.x_train.sha256: " in err
    )
    assert (
        "Frey Face VAE (bernoulli), Frey Face VAE (gaussian): data.source: offline stand-in: digits cropped "
        "to 28x20 -> Frey Face"
    ) in err
    assert "--move-aside" in err
    assert (out / "metrics.json").read_bytes() == before
    assert run("run", "--out", str(out), "--move-aside") == 0
    [moved] = [path for path in tmp_path.iterdir() if path.name.startswith("mine.moved-")]
    assert (moved / "metrics.json").read_bytes() == before and (moved / "checkpoints" / "plain.npz").exists()
    assert metrics(out)["run"]["data_source"] == "MNIST; Frey Face" and metrics(out)["run"]["stand_in"] is False


def test_an_explicit_out_with_other_settings_is_refused_and_nothing_changes(new_user, tmp_path, capsys):
    out = tmp_path / "mine"
    assert run("frey", "--out", str(out)) == 0
    before = (out / "metrics.json").read_bytes(), (out / "checkpoints" / "vae_bernoulli.npz").read_bytes()
    capsys.readouterr()
    assert run("frey", "--out", str(out), "--set", "vae_epochs=3") == 2
    err = capsys.readouterr().err
    assert "settings: vae_epochs: 2 -> 3" in err and "--move-aside" in err
    assert ((out / "metrics.json").read_bytes(), (out / "checkpoints" / "vae_bernoulli.npz").read_bytes()) == before


def test_a_checkpoint_of_other_data_is_refused_even_without_its_result(new_user, tmp_path, capsys):
    out = tmp_path / "mine"
    assert run("mnist", "--out", str(out)) == 0
    values = metrics(out)
    del values["mnist"], values["mnist_reference"]  # as if killed while training: only the checkpoint is there
    (out / "metrics.json").write_text(json.dumps(values))
    new_user(mnist_found=True)
    capsys.readouterr()
    assert run("mnist", "--out", str(out)) == 2
    assert "MNIST plain: data.source: offline stand-in" in capsys.readouterr().err


def test_settings_changes_never_resume_each_others_checkpoints(new_user):
    assert run("frey") == 0
    assert run("frey", "--set", "vae_epochs=3") == 0
    assert run("frey") == 0  # back to the preset: its own 2-epoch model, not the 3-epoch one
    assert len(metrics("runs/smoke-stand-in")["frey"]["bernoulli"]["history"]) == 2
    longer = metrics("runs/smoke-vae_epochs=3-stand-in")
    assert len(longer["frey"]["gaussian"]["history"]) == 3 and longer["run"]["overrides"] == {"vae_epochs": 3}
    assert longer["frey"]["bernoulli"]["provenance"]["settings"]["vae_epochs"] == 3
    assert "Overrides of the preset: `vae_epochs=3`." in Path("runs/smoke-vae_epochs=3-stand-in/report.md").read_text()


def test_finished_training_is_reused_on_an_exact_match(new_user):
    assert run("frey") == 0
    checkpoint = Path("runs/smoke-stand-in/checkpoints/vae_bernoulli.npz")
    stamp = checkpoint.stat().st_mtime_ns
    assert run("frey") == 0
    assert checkpoint.stat().st_mtime_ns == stamp


# -- one writer per folder -------------------------------------------------------------------------


def hold_lock(folder) -> subprocess.Popen:
    """Another process holding the lock of ``folder`` (as a command writing there does), until it is killed."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom experiments.run_folder import FolderLock\n"
            "lock = FolderLock(sys.argv[1]); print('held', flush=True); time.sleep(300)",
            str(folder),
        ],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    assert holder.stdout.readline() == "held\n"
    return holder


@pytest.mark.parametrize("command", [["frey"], ["frey", "--seeds", "0,1"], ["report"]])
def test_a_folder_in_use_is_refused_at_once_naming_the_process_and_a_dead_ones_lock_never_blocks(
    new_user, tmp_path, capsys, command
):
    out = tmp_path / "mine"
    if command == ["report"]:
        assert run("frey", "--set", "vae_epochs=1", "--out", str(out)) == 0
        capsys.readouterr()
    holder = hold_lock(out)
    try:
        before = sorted(path.name for path in out.iterdir())
        started = time.monotonic()
        assert run(*command, "--set", "vae_epochs=1", "--out", str(out)) == 2
        assert time.monotonic() - started < 30
        one_line_error(
            capsys,
            f"{out} is in use by process {holder.pid} (command python -c {out})",
            "Wait for it to end, or choose another --out",
        )
        assert sorted(path.name for path in out.iterdir()) == before  # nothing written
    finally:
        holder.kill()
        holder.wait()
    assert run(*command, "--set", "vae_epochs=1", "--out", str(out)) == 0  # the kernel released the dead one's lock


def test_the_report_describes_the_settings_its_folder_holds_not_a_command_line(new_user, tmp_path):
    out = tmp_path / "mine"
    assert run("frey", "--set", "vae_epochs=1", "--out", str(out)) == 0
    stored = metrics(out)
    stored["run"]["overrides"] = {"vae_learning_rate": 0.01}  # what a command line might have said
    (out / "metrics.json").write_text(json.dumps(stored))
    assert run("report", "--out", str(out)) == 0
    report = (out / "report.md").read_text()
    assert "Overrides of the preset: `vae_epochs=1`." in report and "other settings than the folder" not in report
    stored["run"]["settings"]["vae_learning_rate"] = 0.01  # a folder's record that its models contradict
    (out / "metrics.json").write_text(json.dumps(stored))
    assert run("report", "--out", str(out)) == 0
    report = (out / "report.md").read_text()
    assert (
        "WARNING: results made with other settings than the folder's: frey/bernoulli (vae_learning_rate: "
        "0.01 -> 0.001), frey/gaussian (vae_learning_rate: 0.01 -> 0.001)" in report
    )


# -- settings on the command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    "setting, message",
    [
        ("bogus=1", "Unknown setting 'bogus'; valid settings are: seed, n_train"),
        ("epochs=0", "Expected epochs to be a positive integer. Received: epochs=0"),
        ("epochs=two", "--set epochs=two: expected an integer."),
        ("rho=1.5", "Expected rho to be a probability in (0, 1)"),
        ("name=other", "choose it with --preset"),
        ("epochs", "expected key=value"),
    ],
)
def test_a_bad_setting_is_a_clear_error_before_anything_runs(new_user, capsys, setting, message):
    assert run("run", "--set", setting) == 2
    one_line_error(capsys, message)
    assert not Path("runs").exists()


# -- data the user pointed at ----------------------------------------------------------------------


def test_a_damaged_file_in_the_named_folder_is_an_error_not_the_stand_in(new_user, tmp_path, capsys):
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    damaged = folder / "train-images-idx3-ubyte.gz"
    damaged.write_bytes(b"\x1f\x8b\x08\x00" + bytes(100))  # a gzip header, then nothing sensible
    assert run("mnist", "--data-dir", str(folder.parent)) == 1
    one_line_error(capsys, damaged, "damaged or truncated")
    assert not Path("runs").exists()


@pytest.mark.parametrize("how", ["--data-dir", "MINIDL_DATA"])
def test_a_named_folder_that_does_not_exist_or_lacks_the_files_is_an_error(
    new_user, tmp_path, monkeypatch, capsys, how
):
    missing = tmp_path / "no-such-folder"
    args = ["--data-dir", str(missing)] if how == "--data-dir" else []
    if how == "MINIDL_DATA":
        monkeypatch.setenv("MINIDL_DATA", str(missing))
    assert run("frey", *args) == 1
    one_line_error(capsys, f"{missing} (given as {how}) is not an existing folder")
    missing.mkdir()  # exists now, but holds nothing: the stand-in is not for a user who named a folder
    assert run("frey", *args) == 1
    one_line_error(
        capsys, "frey/frey_rawface.mat was not found", "stand-in replaces Frey Face only when no data folder"
    )
    assert not Path("runs").exists()


# -- bad output folders and files ------------------------------------------------------------------


def test_out_that_is_a_file_is_a_one_line_error(new_user, tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("")
    for command in ("frey", "report"):
        assert run(command, "--out", str(path)) == 1
        one_line_error(capsys, f"{path}: is a file, not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_out_in_a_read_only_folder_is_a_one_line_error(new_user, tmp_path, capsys):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert run("frey", "--out", str(folder / "out")) == 1
        one_line_error(capsys, folder / "out")
    finally:
        folder.chmod(0o755)


def test_out_below_a_file_is_a_one_line_error(new_user, tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    assert run("frey", "--out", str(tmp_path / "a-file" / "out")) == 1
    one_line_error(capsys, tmp_path / "a-file" / "out")


def test_a_corrupt_checkpoint_or_metrics_in_out_is_a_one_line_error(new_user, tmp_path, capsys):
    out = tmp_path / "mine"
    assert run("frey", "--out", str(out)) == 0
    capsys.readouterr()
    checkpoint = out / "checkpoints" / "vae_bernoulli.npz"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    assert run("frey", "--out", str(out)) == 1
    one_line_error(capsys, f"{checkpoint}: cannot be read as a checkpoint")
    (out / "metrics.json").write_text("{not json")
    for command in ("frey", "report"):
        assert run(command, "--out", str(out)) == 1
        one_line_error(capsys, f"{out / 'metrics.json'}: cannot be read")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--out", ""], "--out '': expected a folder name"),
        (["--out", "  ", "--move-aside"], "--out '  ': expected a folder name"),
        (["--out", ".", "--move-aside"], "holds the current folder and cannot be moved aside"),
        (["--out", "..", "--move-aside"], "holds the current folder and cannot be moved aside"),
        (["--out", "", "--seeds", "0,1"], "--out '': expected a folder name"),
    ],
)
def test_an_out_without_a_name_or_holding_the_current_folder_is_a_one_line_error(
    new_user, tmp_path, capsys, args, message
):
    (tmp_path / "keep.txt").write_text("mine")
    for command in ("run", "report"):
        assert pipeline.main([command, *args, *FAST]) == 2
        one_line_error(capsys, message)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["keep.txt"]


def test_unknown_model_or_report_before_any_run_creates_no_folder(new_user, tmp_path, capsys):
    assert pipeline.main(["mnist", "--models", "bogus", "--out", str(tmp_path / "a")]) == 2
    one_line_error(capsys, "Unknown model(s) ['bogus']")
    assert pipeline.main(["report", "--out", str(tmp_path / "b")]) == 1
    one_line_error(capsys, "No metrics in", tmp_path / "b")
    assert pipeline.main(["report"]) == 1
    one_line_error(capsys, "No metrics in runs/quick or runs/quick-stand-in")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not Path("runs").exists()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_training_that_diverges_is_a_one_line_error_and_keeps_the_settings(new_user, capsys):
    assert run("frey", "--set", "vae_learning_rate=1e39") == 1
    one_line_error(capsys, "Non-finite", "no checkpoint was written yet")
    folder = Path("runs/smoke-vae_learning_rate=1e+39-stand-in")
    assert metrics(folder)["run"]["settings"]["vae_learning_rate"] == 1e39 and "frey" not in metrics(folder)
    assert not (folder / "checkpoints" / "vae_bernoulli.npz").exists()
