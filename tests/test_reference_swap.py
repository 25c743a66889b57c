"""``MINIDL_KERNELS=reference`` (what ``make mutate`` runs) must reach every kernel the library calls."""

import os
import subprocess
import sys

import minidl.kernels
from minidl import reference


def test_every_kernel_has_a_twin_and_the_swap_replaces_every_use():
    assert sorted(reference.__all__) == sorted(name for name in dir(minidl.kernels)
                                               if not name.startswith("_") and callable(getattr(minidl.kernels, name)))
    code = """
import sys, pytest
class Probe:
    def pytest_sessionstart(self, session):
        import minidl.kernels
        left = [f"{m.__name__}.{n}" for m in list(sys.modules.values())
                if m is not None and m.__name__.startswith(("minidl.", "autoencoders", "experiments"))
                and not m.__name__.startswith("minidl.kernels")
                for n in dir(minidl.kernels)
                if not n.startswith("_") and getattr(m, n, None) is getattr(minidl.kernels, n)]
        print("LEFT", left)
sys.exit(pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", "tests/test_reference_swap.py"],
                     plugins=[Probe()]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, MINIDL_KERNELS="reference"),
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "LEFT []" in result.stdout, result.stdout + result.stderr
