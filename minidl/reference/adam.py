"""NumPy reference for :mod:`minidl.kernels.adam`: the formula itself, :func:`minidl.optim.adam_formula`."""

from minidl.optim import adam_formula

adam_update = adam_formula  # the kernel's name, for the backend switch

__all__ = ["adam_update"]
