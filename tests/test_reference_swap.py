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
        import minidl.kernels, minidl.layers.activations, minidl.layers.conv, minidl.layers.pool, minidl.losses, minidl.optim
        modules = (minidl.layers.activations, minidl.layers.conv, minidl.layers.pool, minidl.losses, minidl.optim)
        left = [f"{m.__name__}.{n}" for m in modules for n in dir(m) if getattr(m, n) is getattr(minidl.kernels, n, None)
                and callable(getattr(m, n))]
        print("LEFT", left)
sys.exit(pytest.main(["-q", "--collect-only", "-p", "no:cacheprovider", "tests/test_reference_swap.py"], plugins=[Probe()]))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env=dict(os.environ, MINIDL_KERNELS="reference"),
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert "LEFT []" in result.stdout, result.stdout + result.stderr
