"""Test-session settings: hypothesis profiles, the kernels' NumPy twins for mutation testing, and the
``offline`` fixture of the seed and sweep tests.

A plain run keeps every property test's own ``@settings(max_examples=...)``, drawn from a fresh random
seed each time; on CI, Hypothesis loads its own derandomized "ci" profile by itself. ``make test-thorough``
runs ``pytest --hypothesis-profile=thorough``: every property test then draws at least
``THOROUGH_EXAMPLES`` examples (2000, or the environment variable of that name), to find the inputs that
break a test only rarely (a property must hold for any seed).

``MINIDL_KERNELS=reference`` runs all of minidl (layers, losses, optimizers) on the plain NumPy twins of the kernels
(:mod:`minidl.reference`) instead of the kernels: ``make mutate`` uses it so that a mutant of a twin is
exercised by the same gradient tests that exercise the kernel (tests/test_kernels.py holds the two equal).
The hypothesis profile ``mutate`` (derandomized, no example database, no shrinking) makes a run repeatable
and quick, which mutation testing needs: a mutant counts as killed only when a fixed set of examples fails.
"""

import os
import sys

import minidl

minidl.tune_process()  # as the experiments and benchmarks do, before NumPy is imported where it still can be

import pytest  # noqa: E402
from hypothesis import Phase, settings  # noqa: E402

THOROUGH_EXAMPLES = int(os.environ.get("THOROUGH_EXAMPLES", 2000))

settings.register_profile("thorough", max_examples=THOROUGH_EXAMPLES, deadline=None, print_blob=True)
# no shrinking: a mutant is killed by the first failing example, and shrinking it only costs time
settings.register_profile("mutate", derandomize=True, database=None, print_blob=False,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])


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


def pytest_configure(config):
    if os.environ.get("MINIDL_KERNELS") == "reference":
        import importlib
        import pkgutil

        import minidl
        import minidl.kernels
        from minidl import reference

        for info in pkgutil.walk_packages(minidl.__path__, "minidl."):
            importlib.import_module(info.name)
        # every name bound to a kernel, in every module outside the kernels' own package, now names its twin
        for module in list(sys.modules.values()):
            name = getattr(module, "__name__", "")
            if not name.startswith("minidl.") or name.startswith("minidl.kernels"):
                continue
            for kernel in reference.__all__:
                if getattr(module, kernel, None) is getattr(minidl.kernels, kernel):
                    setattr(module, kernel, getattr(reference, kernel))


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """A machine without data or network, in tmp_path: every process (workers too) uses the offline stand-in."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("MINIDL_OFFLINE", "1")
    monkeypatch.delenv("MINIDL_DATA", raising=False)
    return tmp_path
