"""minidl: deep learning from scratch in NumPy, with Numba kernels for the hot loops.

Subpackages and modules:

* :mod:`minidl.layers` -- layers, each with ``forward`` and ``backward`` side by side;
* :mod:`minidl.kernels` -- Numba kernels, with NumPy twins in :mod:`minidl.reference`;
  :mod:`minidl.backend` -- the switch between them (:func:`~minidl.backend.set_backend`);
* :mod:`minidl.losses` -- losses and penalties returning values and analytic gradients;
* :mod:`minidl.optim` -- SGD and Adam; :mod:`minidl.init` -- initialisers;
* :mod:`minidl.gradcheck` -- central-difference gradient checks;
* :mod:`minidl.testing` -- the gradient-check kit for your own layers, built on them;
* :mod:`minidl.contractive` -- the contractive penalty; :mod:`minidl.winograd` -- Winograd's transforms;
* :mod:`minidl.serialization` -- saving and loading models without pickle;
* :mod:`minidl.flow` -- the gradient flow of a network: norms, dead and saturated units, per layer;
* :mod:`minidl.process` -- :func:`tune_process`, the thread and allocator settings for training
  (an explicit call: importing minidl changes nothing in the process).
"""

from minidl.process import tune_process

__all__ = ["tune_process"]

__version__ = "0.1.0"
