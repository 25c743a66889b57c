"""Numba-compiled hot loops. Every kernel has a same-signature NumPy twin in :mod:`minidl.reference`.

Kernels take arrays and numbers only, write into preallocated outputs and read no globals, so the
layer code decides every allocation and the references can be swapped in for testing.
"""

from minidl.kernels.adam import adam_update
from minidl.kernels.im2col import col2im, im2col
from minidl.kernels.pool import maxpool_backward, maxpool_forward

__all__ = ["im2col", "col2im", "maxpool_forward", "maxpool_backward", "adam_update"]
