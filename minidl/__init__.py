"""minidl: deep learning from scratch in NumPy, with Numba kernels for the hot loops.

Subpackages and modules:

* :mod:`minidl.layers` -- layers, each with ``forward`` and ``backward`` side by side;
* :mod:`minidl.kernels` -- Numba kernels, with NumPy twins in :mod:`minidl.reference`;
* :mod:`minidl.losses` -- losses and penalties returning values and analytic gradients;
* :mod:`minidl.optim` -- SGD and Adam; :mod:`minidl.init` -- initialisers;
* :mod:`minidl.gradcheck` -- central-difference gradient checks;
* :mod:`minidl.testing` -- the gradient-check kit for your own layers, built on them.
"""

import os

# OpenBLAS threads busy-wait for a while after each matrix product, and on a 2-core machine they then
# compete with the Numba kernels that run between products (a conv step took 46 ms instead of 28 ms).
# A short spin timeout removes that contention. OpenBLAS reads it when NumPy is first imported, so it
# only takes effect when minidl is imported first; an explicit setting by the user wins.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

__version__ = "0.1.0"
