"""NumPy reference for :mod:`minidl.kernels.adam`: the formula itself, :func:`minidl.optim.adam_update`."""

from minidl.optim import adam_update

__all__ = ["adam_update"]
