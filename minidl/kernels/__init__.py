"""Numba-compiled hot loops. Every kernel has a same-signature NumPy twin in :mod:`minidl.reference`.

Kernels take arrays and numbers only, write into preallocated outputs and read no globals, so the
layer code decides every allocation and the twins can run in their place (:mod:`minidl.backend`).
"""

from minidl.kernels.activations import (
    any_per_row,
    negative_capped_abs,
    relu_backward,
    relu_forward,
    sigmoid_from_exponential,
)
from minidl.kernels.adam import adam_update
from minidl.kernels.im2col import col2im, im2col
from minidl.kernels.losses import bce_logits_rows
from minidl.kernels.pool import maxpool_backward, maxpool_forward, maxpool_gather
from minidl.kernels.winograd import (
    winograd_input_tiles,
    winograd_input_tiles_adjoint,
    winograd_output_tiles,
    winograd_output_tiles_adjoint,
)

__all__ = [
    "im2col",
    "col2im",
    "maxpool_forward",
    "maxpool_backward",
    "maxpool_gather",
    "adam_update",
    "relu_forward",
    "relu_backward",
    "sigmoid_from_exponential",
    "winograd_input_tiles",
    "winograd_input_tiles_adjoint",
    "winograd_output_tiles",
    "winograd_output_tiles_adjoint",
    "bce_logits_rows",
    "negative_capped_abs",
    "any_per_row",
]
