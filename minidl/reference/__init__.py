"""Plain NumPy twins of the Numba kernels: same signatures, same results, written to be read.

Tests hold each kernel equal to its twin; a reader who wants to know what a kernel computes reads
the twin first.
"""

from minidl.reference.activations import (
    any_per_row,
    negative_capped_abs,
    relu_backward,
    relu_forward,
    sigmoid_from_exponential,
)
from minidl.reference.adam import adam_update
from minidl.reference.im2col import col2im, im2col
from minidl.reference.losses import bce_logits_rows
from minidl.reference.pool import maxpool_backward, maxpool_forward, maxpool_gather
from minidl.reference.winograd import (
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
