"""Test-session settings: hypothesis profiles, the ``backend`` fixture, and the
``offline`` fixture of the seed and sweep tests.

A plain run keeps every property test's own ``@settings(max_examples=...)``, drawn from a fresh random
seed each time; on CI, Hypothesis loads its own derandomized "ci" profile by itself. ``make test-thorough``
runs ``pytest --hypothesis-profile=thorough``: every property test then draws at least
``THOROUGH_EXAMPLES`` examples (2000, or the environment variable of that name), to find the inputs that
break a test only rarely (a property must hold for any seed).

The ``backend`` fixture runs a test on both backends of :mod:`minidl.backend` (the layer, loss and
optimizer tests use it). ``MINIDL_KERNELS=numpy`` runs the whole suite on the kernels' NumPy twins:
``make mutate`` uses it so that a mutant of a twin is exercised by the same gradient tests that
exercise the kernel (tests/test_kernels.py holds the two equal).
The hypothesis profile ``mutate`` (derandomized, no example database, no shrinking) makes a run repeatable
and quick, which mutation testing needs: a mutant counts as killed only when a fixed set of examples fails.
"""

import os
from pathlib import Path

import minidl

minidl.tune_process()  # as the experiments and benchmarks do, before NumPy is imported where it still can be

import pytest  # noqa: E402
from file_schemas import available, check_checkpoint, check_json  # noqa: E402
from hypothesis import Phase, settings  # noqa: E402

from minidl.backend import BACKENDS, use_backend  # noqa: E402

THOROUGH_EXAMPLES = int(os.environ.get("THOROUGH_EXAMPLES", 2000))

settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, deadline=None, print_blob=True)
# no shrinking: a mutant is killed by the first failing example, and shrinking it only costs time
settings.register_profile(
    "mutate", derandomize=True, database=None, print_blob=False, phases=[Phase.explicit, Phase.reuse, Phase.generate]
)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--hypothesis-profile") != "thorough":
        return
    for item in items:
        test = getattr(item, "obj", None)
        own = getattr(test, "_hypothesis_internal_use_settings", None)
        # A test's own @settings outranks any profile, so raise its count where Hypothesis keeps it
        # (the attribute Hypothesis's pytest plugin itself reads and rewrites).
        if own is not None and own.max_examples < THOROUGH_EXAMPLES:
            test._hypothesis_internal_use_settings = settings(own, max_examples=THOROUGH_EXAMPLES)


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    """Runs a test once on each backend: the compiled kernels and their NumPy twins (minidl.backend)."""
    with use_backend(request.param):
        yield request.param


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A machine without data or network, in tmp_path: every process (workers too) uses the offline stand-in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    return tmp_path


@pytest.fixture(autouse=True)
def files_follow_their_schemas(request, monkeypatch):
    """Every checkpoint, run's metrics.json and collection.json a test writes through the project's writers (in
    this process) is checked against its schema as soon as it is written (tests/file_schemas.py); a test marked
    ``partial_files`` writes incomplete ones on purpose (a folder holding only what a check reads)."""
    if not available() or request.node.get_closest_marker("partial_files"):
        return
    from autoencoders.trainer import Trainer
    from experiments import collection_file, run_folder

    save_checkpoint, write_run, write_collection = Trainer.save_checkpoint, run_folder._write, collection_file.write

    def checked_save(self, path=None):
        save_checkpoint(self, path)
        check_checkpoint(path if path is not None else self.checkpoint_path)

    def checked_write(out_dir, metrics):
        write_run(out_dir, metrics)
        check_json(Path(out_dir) / "metrics.json", "metrics")

    def checked_collection(folder, document):
        write_collection(folder, document)
        check_json(Path(folder) / collection_file.NAME, "collection")

    monkeypatch.setattr(Trainer, "save_checkpoint", checked_save)
    monkeypatch.setattr(collection_file, "write", checked_collection)
    monkeypatch.setattr(run_folder, "_write", checked_write)
