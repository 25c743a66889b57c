"""Test-session settings.

``MINIDL_KERNELS=reference`` runs the layers and optimizers on the plain NumPy twins of the Numba kernels
(:mod:`minidl.reference`) instead of the kernels: ``make mutate`` uses it so that a mutant of a twin is
exercised by the same gradient tests that exercise the kernel (tests/test_kernels.py holds the two equal).

The hypothesis profile ``mutate`` (derandomized, no example database, no shrinking) makes a run repeatable
and quick, which mutation testing needs: a mutant counts as killed only when a fixed set of examples fails.
"""

import os

from hypothesis import Phase, settings

# no shrinking: a mutant is killed by the first failing example, and shrinking it only costs time
settings.register_profile("mutate", derandomize=True, database=None, print_blob=False,
                          phases=[Phase.explicit, Phase.reuse, Phase.generate])


def pytest_configure(config):
    if os.environ.get("MINIDL_KERNELS") == "reference":
        import minidl.layers.conv
        import minidl.layers.pool
        import minidl.optim
        from minidl import reference

        for module in (minidl.layers.conv, minidl.layers.pool, minidl.optim):
            for name in reference.__all__:
                if hasattr(module, name):
                    setattr(module, name, getattr(reference, name))
