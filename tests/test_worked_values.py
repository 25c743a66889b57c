"""Each definition pinned to a value small enough to compute by hand.

A gradient check only says that a backward pass is the derivative of its forward pass: a loss with a
wrong factor, a convolution that flips its kernel, or a sigmoid of 2x passes it. These examples pin the
forward definitions (and the backward values that follow from them) to numbers worked out on paper; the
arithmetic is in each comment.
"""

import math

import numpy as np
import pytest

from minidl.contractive import contractive_penalty
from minidl.layers import (
    Conv2D,
    Conv2DTranspose,
    Dense,
    Flatten,
    Identity,
    MaxPool2D,
    ReLU,
    Reshape,
    Sequential,
    Sigmoid,
    Tanh,
    ZeroPad2D,
)
from minidl.losses import (
    bce,
    bce_with_logits,
    elbo,
    gaussian_kl,
    gaussian_nll,
    kl_sparsity,
    mse,
    reparameterize,
    reparameterize_backward,
)

W2 = np.array([[1.0, 2.0], [3.0, 4.0]])
X16 = np.arange(16.0).reshape(1, 1, 4, 4)  # rows 0 1 2 3 / 4 5 6 7 / 8 9 10 11 / 12 13 14 15


def test_dense():
    layer = Dense(2, 3, dtype=np.float64)
    layer.params["W"][...] = [[1, 2, 3], [4, 5, 6]]
    layer.params["b"][...] = [1, 0, -1]
    # [1, 2] @ W + b = [1 + 8 + 1, 2 + 10, 3 + 12 - 1]
    np.testing.assert_array_equal(layer.forward(np.array([[1.0, 2.0]])), [[10, 12, 14]])
    # dy = [1, 0, -1]: dx = dy @ W.T = [1 - 3, 4 - 6]; dW = x.T @ dy; db = dy
    np.testing.assert_array_equal(layer.backward(np.array([[1.0, 0.0, -1.0]])), [[-2, -2]])
    np.testing.assert_array_equal(layer.grads["W"], [[1, 0, -1], [2, 0, -2]])
    np.testing.assert_array_equal(layer.grads["b"], [1, 0, -1])
    # the tangent of e_1 is the first row of W; its backward adds t.T @ dt into dW
    np.testing.assert_array_equal(layer.jvp(np.array([[[1.0, 0.0]]])), [[[1, 2, 3]]])


def test_conv2d_stride_two():
    layer = Conv2D(1, 1, kernel_size=2, stride=2, padding="valid", dtype=np.float64)
    layer.params["W"][...] = W2
    layer.params["b"][...] = 0.5
    # top-left window [[0, 1], [4, 5]] . [[1, 2], [3, 4]] = 0 + 2 + 12 + 20 = 34; then 54, 114, 134 (+ 0.5)
    np.testing.assert_array_equal(layer.forward(X16)[0, 0], [[34.5, 54.5], [114.5, 134.5]])
    # dy = 1 everywhere: every pixel lies in one window and gets the kernel entry it met
    dx = layer.backward(np.ones((1, 1, 2, 2)))
    np.testing.assert_array_equal(dx[0, 0], np.tile(W2, (2, 2)))
    # dW = the sum of the four windows: [[0+2+8+10, 1+3+9+11], [4+6+12+14, 5+7+13+15]]
    np.testing.assert_array_equal(layer.grads["W"][0, 0], [[20, 24], [36, 40]])
    assert layer.grads["b"][0] == 4


def test_conv2d_same_padding_three_by_three():
    layer = Conv2D(1, 1, kernel_size=3, stride=1, padding="same", dtype=np.float64)
    layer.params["W"][...] = 1.0
    # each output is the sum of the 3x3 neighbourhood, zero outside: corner 0+1+4+5 = 10, centre-ish 5: 0..10
    y = layer.forward(X16)[0, 0]
    assert y[0, 0] == 10 and y[1, 1] == 0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10 and y[3, 3] == 10 + 11 + 14 + 15


def test_conv2d_transpose_stride_two():
    layer = Conv2DTranspose(1, 1, kernel_size=2, stride=2, padding="valid", dtype=np.float64)
    layer.params["W"][...] = W2
    x = np.array([[[[1.0, 2.0], [3.0, 4.0]]]])
    # each input pixel paints x_ij * W into its own 2x2 block
    np.testing.assert_array_equal(layer.forward(x)[0, 0], [[1, 2, 2, 4], [3, 4, 6, 8], [3, 6, 4, 8], [9, 12, 12, 16]])
    # backward is the strided convolution of dy with W: the numbers of test_conv2d_stride_two
    np.testing.assert_array_equal(layer.backward(X16)[0, 0], [[34, 54], [114, 134]])
    # dW = sum_ij x_ij * (block ij of dy) = 1 [[0,1],[4,5]] + 2 [[2,3],[6,7]] + 3 [[8,9],[12,13]] + 4 [[10,11],[14,15]]
    np.testing.assert_array_equal(layer.grads["W"][0, 0], [[68, 78], [108, 118]])
    assert layer.grads["b"][0] == 120  # the sum of 0..15


def test_maxpool():
    layer = MaxPool2D(2)
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 6.0]]]])
    np.testing.assert_array_equal(layer.forward(x), [[[[5, 8]]]])
    np.testing.assert_array_equal(layer.backward(np.array([[[[10.0, 20.0]]]]))[0, 0], [[0, 10, 0, 0], [0, 0, 20, 0]])


def test_activations():
    x = np.array([[-2.0, 0.0, math.log(3.0)]])
    relu, sigmoid, tanh = ReLU(), Sigmoid(), Tanh()
    np.testing.assert_array_equal(relu.forward(x), [[0, 0, math.log(3.0)]])
    np.testing.assert_array_equal(relu.backward(np.ones((1, 3))), [[0, 0, 1]])
    # sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4, slope 3/4 * 1/4 = 3/16; sigmoid(0) = 1/2, slope 1/4
    np.testing.assert_allclose(sigmoid.forward(x)[0, 1:], [0.5, 0.75], rtol=1e-15)
    np.testing.assert_allclose(sigmoid.backward(np.ones((1, 3)))[0, 1:], [0.25, 0.1875], rtol=1e-15)
    # the second-order term y (1 - y)(1 - 2 y): 0 at y = 1/2, 3/16 * (-1/2) = -3/32 at y = 3/4
    sigmoid.jvp(np.ones((1, 1, 3)))
    np.testing.assert_allclose(sigmoid.jvp_backward(np.ones((1, 1, 3)))[1][0, 1:], [0.0, -3 / 32], atol=1e-16)
    # tanh(ln 2) = (4 - 1) / (4 + 1) = 3/5, slope 1 - 9/25 = 16/25, second order -2 * 3/5 * 16/25 = -96/125
    t = np.array([[math.log(2.0)]])
    np.testing.assert_allclose(tanh.forward(t), [[0.6]], rtol=1e-15)
    np.testing.assert_allclose(tanh.backward(np.ones((1, 1))), [[0.64]], rtol=1e-15)
    tanh.jvp(np.ones((1, 1, 1)))
    np.testing.assert_allclose(tanh.jvp_backward(np.ones((1, 1, 1)))[1], [[-0.768]], rtol=1e-14)
    identity = Identity()
    np.testing.assert_array_equal(identity.forward(x), x)
    np.testing.assert_array_equal(identity.backward(x), x)


def test_shape_layers():
    pad = ZeroPad2D(((1, 0), (0, 2)))
    np.testing.assert_array_equal(pad.forward(np.array([[[[7.0]]]]))[0, 0], [[0, 0, 0], [7, 0, 0]])
    np.testing.assert_array_equal(pad.backward(np.arange(6.0).reshape(1, 1, 2, 3)), [[[[3.0]]]])
    flat = Flatten()
    np.testing.assert_array_equal(flat.forward(X16[:, :, :2, :2]), [[0, 1, 4, 5]])  # C order
    reshape = Reshape((2, 2))
    np.testing.assert_array_equal(reshape.forward(np.array([[1.0, 2.0, 3.0, 4.0]])), [[[1, 2], [3, 4]]])


def test_losses():
    # mse: ((1 - 0)^2 + (2 - 0)^2) / 2 = 2.5, gradient 2 (y - t) / 2
    value, grad = mse(np.array([[1.0, 2.0]]), np.zeros((1, 2)))
    assert value == 2.5
    np.testing.assert_array_equal(grad, [[1, 2]])
    # bce of p = [1/2, 1/4] against t = [1, 0]: (ln 2 + ln 4/3) / 2; gradient (p - t) / (p (1 - p)) / 2
    value, grad = bce(np.array([[0.5, 0.25]]), np.array([[1.0, 0.0]]))
    assert value == pytest.approx((math.log(2) + math.log(4 / 3)) / 2, rel=1e-15)
    np.testing.assert_allclose(grad, [[-1.0, 2 / 3]], rtol=1e-15)
    assert bce(np.array([[0.5, 0.25]]), np.array([[1.0, 0.0]]), "sum")[0] == pytest.approx(math.log(8 / 3), rel=1e-15)
    # logits: ln 2 at x = 0 whatever the target; gradient sigmoid(0) - t = -1/2
    value, grad = bce_with_logits(np.array([[0.0, math.log(3.0)]]), np.array([[1.0, 1.0]]), "sum")
    assert value == pytest.approx(math.log(2) + math.log(4 / 3), rel=1e-15)
    np.testing.assert_allclose(grad, [[-0.5, -0.25]], rtol=1e-15)


def test_kl_sparsity():
    # mean activation 0.2 equals rho: no penalty and no gradient
    value, grad = kl_sparsity(np.array([[0.1], [0.3]]), rho=0.2)
    assert value == pytest.approx(0.0, abs=1e-16)
    np.testing.assert_allclose(grad, 0.0, atol=1e-15)
    # mean 0.1 against rho 0.2: 0.2 ln 2 + 0.8 ln(8/9); d/dh = (-0.2/0.1 + 0.8/0.9) / 2 for each sample
    value, grad = kl_sparsity(np.array([[0.1], [0.1]]), rho=0.2)
    assert value == pytest.approx(0.2 * math.log(2) + 0.8 * math.log(8 / 9), rel=1e-14)
    np.testing.assert_allclose(grad, (-2 + 8 / 9) / 2, rtol=1e-14)


def test_vae_terms():
    # sigma = 2 (logvar = ln 4): z = 1 + 0.5 * 2 = 2; dz/dlogvar = eps sigma / 2 = 0.5
    mu, logvar, eps = np.array([[1.0]]), np.array([[math.log(4.0)]]), np.array([[0.5]])
    assert reparameterize(mu, logvar, eps)[0, 0] == pytest.approx(2.0, rel=1e-15)
    dmu, dlogvar = reparameterize_backward(np.ones((1, 1)), logvar, eps)
    assert dmu[0, 0] == 1 and dlogvar[0, 0] == pytest.approx(0.5, rel=1e-15)
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - ln s^2) / 2: 1/2 for (1, 1); (1 - ln 2) / 2 for (0, 2)
    kl, dmu, dlogvar = gaussian_kl(np.array([[1.0], [0.0]]), np.array([[0.0], [math.log(2.0)]]))
    np.testing.assert_allclose(kl, [0.5, (1 - math.log(2)) / 2], rtol=1e-15)
    np.testing.assert_allclose(dmu, [[0.5], [0.0]])  # mu / N
    np.testing.assert_allclose(dlogvar, [[0.0], [0.25]], atol=1e-16)  # (s^2 - 1) / (2 N)
    # -log N(1; 0, 1) = (ln 2 pi + 1) / 2; d/dmean = (mean - x) / var = -1, d/dlogvar = (1 - 1) / 2 = 0
    nll, dmean, dlv = gaussian_nll(np.array([[1.0]]), np.array([[0.0]]), np.array([[0.0]]))
    assert nll[0] == pytest.approx((math.log(2 * math.pi) + 1) / 2, rel=1e-15)
    assert dmean[0, 0] == -1 and dlv[0, 0] == 0
    # the Bernoulli ELBO at logit 0 and a standard normal posterior: ln 2 nats per pixel, KL 0
    terms = elbo(np.array([[1.0, 0.0]]), np.zeros((1, 2)), np.zeros((1, 1)), np.zeros((1, 1)))
    np.testing.assert_allclose(terms.total, [2 * math.log(2)], rtol=1e-15)
    np.testing.assert_allclose(terms.d_decoder, [[-0.5, 0.5]])


@pytest.mark.parametrize("mode", ["closed_form", "exact"])
def test_contractive_penalty(mode):
    # z = sigmoid(2 x) at x = 0: h = 1/2, dz/dx = 2 * 1/4 = 1/2, so ||J||^2 = 1/4
    model = Sequential(Dense(1, 1, dtype=np.float64), Sigmoid())
    model.layers[0].params["W"][...] = 2.0
    x = np.zeros((1, 1))
    model.forward(x)
    value, _ = contractive_penalty(model, x, mode)
    assert value == pytest.approx(0.25, rel=1e-15)
    # dP/dW = d/dW (W h (1 - h))^2 = 2 W (h (1 - h))^2 = 2 * 2 / 16 at x = 0 (the slope does not move with W there)
    assert model.layers[0].grads["W"][0, 0] == pytest.approx(0.25, rel=1e-14)
