"""What clipping logvar to +-LOGVAR_BOUND guarantees (the comment on LOGVAR_BOUND in minidl/losses.py)."""

import numpy as np
import pytest

from minidl.losses import LOGVAR_BOUND, _exp_logvar, gaussian_kl, reparameterize, reparameterize_backward


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_variance_deviation_and_precision_stay_finite_and_normal(dtype):
    logvar = np.array([[-1e4, -LOGVAR_BOUND, 0.0, LOGVAR_BOUND, 1e4]], dtype)
    tiny, huge = np.finfo(dtype).tiny, np.finfo(dtype).max
    with np.errstate(all="raise"):
        for value in (_exp_logvar(logvar), np.sqrt(_exp_logvar(logvar)), _exp_logvar(-logvar)):
            assert value.dtype == dtype and np.all((value >= tiny) & (value <= huge))
        ones = np.ones_like(logvar)
        assert np.all(np.isfinite(reparameterize(0 * ones, logvar, ones)))
        assert all(np.all(np.isfinite(g)) for g in reparameterize_backward(ones, logvar, ones))
        assert all(np.all(np.isfinite(part)) for part in gaussian_kl(0 * ones, logvar))


def test_the_square_of_the_bound_would_not_fit_in_float32():
    with np.errstate(over="ignore", under="ignore"):
        assert np.isinf(np.square(_exp_logvar(np.float32(LOGVAR_BOUND))))
        assert np.square(_exp_logvar(np.float32(-LOGVAR_BOUND))) == 0
