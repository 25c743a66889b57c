"""The Adam update as one pass over memory.

Written with NumPy, one Adam step over a parameter is about a dozen whole-array operations, each
reading and writing the full array (and allocating temporaries); in a profile of the Frey VAE that
bookkeeping took about a fifth of a training step. Here every element is read and written once.
"""

import math

import numpy as np
from numba import prange

from minidl.kernels.threads import ADAM_SERIAL_BELOW, one_thread_below


@one_thread_below(ADAM_SERIAL_BELOW, error_model="numpy")
def adam_update(
    param: np.ndarray,
    grad: np.ndarray,
    m: np.ndarray,
    v: np.ndarray,
    beta1: float,
    beta2: float,
    step_size: float,
    correction2: float,
    eps: float,
) -> None:
    """In-place Adam step on flat (1-D, contiguous) arrays of one parameter.

    m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
    param -= step_size * m / (sqrt(v) / sqrt(correction2) + eps), with step_size = lr / (1 - beta1^t)
    and correction2 = 1 - beta2^t. The arithmetic is done in float64 and stored in the arrays' dtype;
    1 / sqrt(correction2) is computed once, which spares a float64 division per element (a third of
    the kernel's time), and is PyTorch's form of the same expression. Parameters under 262,144 numbers
    (the VAE's largest weights, 143,360) are updated on one thread: waking the others, which may be
    contending with OpenBLAS's, costs more than they save there. Division
    follows NumPy (``error_model="numpy"``: IEEE results, no Python zero-division check).

    Parameters
    ----------
    param, grad, m, v : ndarray, shape (P,)
        ``param``, ``m`` and ``v`` are overwritten.
    beta1, beta2, step_size, correction2, eps : float
    """
    inverse_root = 1.0 / math.sqrt(correction2)
    for i in prange(param.shape[0]):
        # float(): float64 arithmetic also as plain Python (NUMBA_DISABLE_JIT), where a float32 element
        # times a Python float stays float32
        g = float(grad[i])
        m_i = beta1 * float(m[i]) + (1.0 - beta1) * g
        v_i = beta2 * float(v[i]) + (1.0 - beta2) * g * g
        m[i] = m_i
        v[i] = v_i
        param[i] = float(param[i]) - step_size * m_i / (math.sqrt(v_i) * inverse_root + eps)
