"""minidl: deep learning from scratch in NumPy, with Numba kernels for the hot loops.

Subpackages and modules:

* :mod:`minidl.layers` -- layers, each with ``forward`` and ``backward`` side by side;
* :mod:`minidl.kernels` -- Numba kernels, with NumPy twins in :mod:`minidl.reference`;
* :mod:`minidl.losses` -- losses and penalties returning values and analytic gradients;
* :mod:`minidl.optim` -- SGD and Adam; :mod:`minidl.init` -- initialisers;
* :mod:`minidl.gradcheck` -- central-difference gradient checks.
"""

__version__ = "0.1.0"
