"""Winograd minimal filtering: the worked example of docs/winograd.md, the transform identities, and
Conv2D's Winograd path held equal to its im2col path (float64 to 1e-10, float32 within the rounding
bound derived in docs/winograd.md), gradient-checked, in the input's dtype, with the same errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minidl import reference
from minidl.gradcheck import check_layer
from minidl.layers import Conv2D
from minidl.layers.memory import as_images, images_last
from minidl.winograd import F2X2_3X3, F4X4_3X3, tile_grid, transform_weights, transform_weights_adjoint

seeds = st.integers(0, 2**32 - 1)
TRANSFORMS = {"F(2x2,3x3)": F2X2_3X3, "F(4x4,3x3)": F4X4_3X3}


# -- the worked example of docs/winograd.md: F(2, 3) in one dimension, by hand ----------------------


def test_worked_example_forward_and_both_adjoints():
    T = F2X2_3X3
    d, g = np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, -1.0])
    np.testing.assert_array_equal(T.BT @ d, [-2, 5, 1, -2])
    np.testing.assert_array_equal(T.G @ g, [1, 1, -1, -1])
    m = (T.G @ g) * (T.BT @ d)
    np.testing.assert_array_equal(m, [-2, 5, -1, 2])
    y = T.AT @ m
    np.testing.assert_array_equal(y, [2, 4])
    np.testing.assert_array_equal(y, [d[0:3] @ g, d[1:4] @ g])  # the correlation, 6 multiplications

    dy = np.array([1.0, -1.0])
    dm = T.AT.T @ dy
    np.testing.assert_array_equal(dm, [1, 0, 2, 1])
    dd = T.BT.T @ ((T.G @ g) * dm)
    np.testing.assert_array_equal(dd, [1, 1, -3, 1])
    np.testing.assert_array_equal(dd, [g[0], g[1] - g[0], g[2] - g[1], -g[2]])  # sum_o dy[o] g[i - o]
    dg = T.G.T @ ((T.BT @ d) * dm)
    np.testing.assert_array_equal(dg, [-1, -1, -1])
    np.testing.assert_array_equal(dg, [d[0:2] @ dy, d[1:3] @ dy, d[2:4] @ dy])  # sum_o dy[o] d[o + k]


def test_worked_example_in_two_dimensions_nests_the_one_dimensional_one():
    T = F2X2_3X3
    d = np.arange(16.0).reshape(4, 4) % 5 - 2
    g = np.array([[1.0, 2.0, -1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 1.0]])
    Y = T.AT @ ((T.G @ g @ T.G.T) * (T.BT @ d @ T.BT.T)) @ T.AT.T
    direct = np.array([[np.sum(d[r : r + 3, s : s + 3] * g) for s in range(2)] for r in range(2)])
    np.testing.assert_array_equal(Y, direct)
    np.testing.assert_array_equal(direct, [[-9, -6], [3, -9]])


@pytest.mark.parametrize("name", list(TRANSFORMS))
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_transforms_compute_the_correlation_in_1d_and_2d(name, seed):
    T = TRANSFORMS[name]
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(T.tile), rng.standard_normal(3)
    np.testing.assert_allclose(
        T.AT @ ((T.G @ g) * (T.BT @ d)), [d[k : k + 3] @ g for k in range(T.m)], rtol=1e-12, atol=1e-12
    )
    d, g = rng.standard_normal((T.tile, T.tile)), rng.standard_normal((3, 3))
    Y = T.AT @ ((T.G @ g @ T.G.T) * (T.BT @ d @ T.BT.T)) @ T.AT.T
    direct = [[np.sum(d[r : r + 3, s : s + 3] * g) for s in range(T.m)] for r in range(T.m)]
    np.testing.assert_allclose(Y, direct, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(TRANSFORMS))
@settings(max_examples=20, deadline=None)
@given(seed=seeds)
def test_the_transposed_transforms_are_toom_cook_for_the_full_convolution(name, seed):
    # docs/winograd.md: B [(G g) * (A h)] multiplies the polynomials h (m coefficients) and g (3)
    T = TRANSFORMS[name]
    rng = np.random.default_rng(seed)
    h, g = rng.standard_normal(T.m), rng.standard_normal(3)
    np.testing.assert_allclose(T.BT.T @ ((T.G @ g) * (T.AT.T @ h)), np.convolve(g, h), rtol=1e-12, atol=1e-12)


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), seeds)
def test_weight_transform_and_its_adjoint(filters, channels, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((filters, channels, 3, 3))
    for T in TRANSFORMS.values():
        U = transform_weights(W, T.G)
        np.testing.assert_allclose(U[:, 0, 0].reshape(T.tile, T.tile), T.G @ W[0, 0] @ T.G.T, rtol=1e-12, atol=1e-12)
        dU = rng.standard_normal(U.shape)
        assert np.isclose(np.sum(U * dU), np.sum(W * transform_weights_adjoint(dU, T.G)), rtol=1e-12, atol=1e-12)


# -- the layer: both paths compute the same map ------------------------------------------------------


@st.composite
def conv_cases(draw):
    n = draw(st.integers(1, 3))
    c_in, c_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    padding = draw(st.sampled_from(["same", "valid", 0, 1, 2]))
    low = 3 if padding in ("valid", 0) else 1
    height, width = draw(st.integers(low, 11)), draw(st.integers(low, 11))
    return n, c_in, c_out, padding, height, width


def pair(c_in, c_out, padding, rng, dtype=np.float64):
    """The same weights under both paths, with a random bias."""
    slow = Conv2D(c_in, c_out, 3, padding=padding, rng=rng, dtype=dtype, algorithm="im2col")
    fast = Conv2D(c_in, c_out, 3, padding=padding, rng=rng, dtype=dtype, algorithm="winograd")
    slow.params["b"][...] = rng.standard_normal(c_out)
    for name in fast.params:
        fast.params[name][...] = slow.params[name]
    return slow, fast


@settings(max_examples=40, deadline=None)
@given(conv_cases(), seeds)
def test_winograd_path_equals_im2col_path_in_float64(case, seed):
    n, c_in, c_out, padding, height, width = case
    rng = np.random.default_rng(seed)
    slow, fast = pair(c_in, c_out, padding, rng)
    x = rng.standard_normal((n, c_in, height, width))
    y_slow, y_fast = slow.forward(x), fast.forward(x)
    scale = np.abs(y_slow).max() + 1
    np.testing.assert_allclose(y_fast, y_slow, rtol=0, atol=1e-10 * scale)
    dy = rng.standard_normal(y_slow.shape)
    dx_slow, dx_fast = slow.backward(dy), fast.backward(dy)
    np.testing.assert_allclose(dx_fast, dx_slow, rtol=0, atol=1e-10 * (np.abs(dx_slow).max() + 1))
    for name in slow.grads:
        np.testing.assert_allclose(
            fast.grads[name], slow.grads[name], rtol=0, atol=1e-10 * (np.abs(slow.grads[name]).max() + 1)
        )
    # the tangent pass and its backward
    t = rng.standard_normal((2,) + x.shape)
    np.testing.assert_allclose(fast.jvp(t), slow.jvp(t), rtol=0, atol=1e-10 * scale)
    dt = rng.standard_normal((2,) + y_slow.shape)
    slow.zero_grad()
    fast.zero_grad()
    np.testing.assert_allclose(
        fast.jvp_backward(dt)[0], slow.jvp_backward(dt)[0], rtol=0, atol=1e-10 * (np.abs(dx_slow).max() + 1)
    )
    np.testing.assert_allclose(
        fast.grads["W"], slow.grads["W"], rtol=0, atol=1e-10 * (np.abs(slow.grads["W"]).max() + 1)
    )


@settings(max_examples=15, deadline=None)
@given(conv_cases(), seeds)
def test_winograd_path_passes_the_gradient_check(case, seed):
    n, c_in, c_out, padding, height, width = case
    rng = np.random.default_rng(seed)
    _, fast = pair(c_in, c_out, padding, rng)
    errors = check_layer(fast, rng.standard_normal((n, c_in, height, width)), rng=seed)
    assert max(errors.values()) < 1e-6, errors


# -- float32: within the rounding bound of each path ------------------------------------------------

U32 = 2.0**-24  # unit roundoff of float32


def gamma(n):
    """gamma_n = n u / (1 - n u): the relative error bound of a sum of n rounded terms."""
    return n * U32 / (1 - n * U32)


def winograd_magnitudes(x, W, b, pad, dy):
    """The Winograd pipeline in float64 on absolute values of everything: what each output, input
    gradient and weight gradient of the float32 computation is a sum of, in magnitude (docs/winograd.md)."""
    T = F4X4_3X3
    n, _, height, width = x.shape
    out_h, out_w = height + 2 * pad - 2, width + 2 * pad - 2
    tiles_h, tiles_w = tile_grid(out_h, out_w, T.m)
    BT, AT = np.abs(T.BT), np.abs(T.AT)
    V = np.empty((T.tile**2, x.shape[1], tiles_h * tiles_w * n))
    reference.winograd_input_tiles(images_last(np.abs(x), np.float64), BT, pad, pad, tiles_h, tiles_w, V)
    U = transform_weights(np.abs(W).astype(np.float64), np.abs(T.G))
    y = np.empty((W.shape[0], out_h, out_w, n))
    reference.winograd_output_tiles(U @ V, AT, np.abs(b).astype(np.float64), y)
    dM, db = np.empty((T.tile**2, W.shape[0], V.shape[2])), np.empty(W.shape[0])
    reference.winograd_output_tiles_adjoint(images_last(np.abs(dy), np.float64), AT, dM, db)
    dx = np.empty((x.shape[1], height, width, n))
    reference.winograd_input_tiles_adjoint(U.transpose(0, 2, 1) @ dM, BT, pad, pad, tiles_h, tiles_w, dx)
    dW = transform_weights_adjoint(dM @ V.transpose(0, 2, 1), np.abs(T.G))
    return as_images(y), as_images(dx), dW, V.shape[2]


def direct_magnitudes(x, W, b, pad, dy):
    """The im2col path in float64 on absolute values: |W| * |x| + |b|, and the same for the gradients."""
    layer = Conv2D(W.shape[1], W.shape[0], 3, padding=pad, dtype=np.float64, algorithm="im2col")
    layer.params["W"][...], layer.params["b"][...] = np.abs(W), np.abs(b)
    y = layer.forward(np.abs(x).astype(np.float64))
    dx = layer.backward(np.abs(dy).astype(np.float64))
    return y, dx, layer.grads["W"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.integers(1, 24), st.integers(1, 24), st.sampled_from([0, 1]), st.integers(3, 15), seeds)
def test_float32_paths_agree_within_their_rounding_bounds(n, c_in, c_out, pad, size, seed):
    """Each float32 result differs from the exact one by at most gamma(k) times the same sum taken
    over magnitudes, k being the number of roundings on its longest path (docs/winograd.md): for the
    Winograd path C + 60 (forward), F + 60 (input gradient), tiles + 80 (weight gradient); for the
    im2col path 9 C + 1, F + 10 and the number of columns. The two paths agree within the sum of
    their bounds; an indexing error would miss by the size of the result itself."""
    rng = np.random.default_rng(seed)
    slow, fast = pair(c_in, c_out, pad, rng, dtype=np.float32)
    x = rng.standard_normal((n, c_in, size, size)).astype(np.float32)
    W, b = slow.params["W"], slow.params["b"]
    y_slow, y_fast = slow.forward(x), fast.forward(x)
    dy = rng.standard_normal(y_slow.shape).astype(np.float32)
    dx_slow, dx_fast = slow.backward(dy), fast.backward(dy)
    y_w, dx_w, dW_w, tiles = winograd_magnitudes(x, W, b, pad, dy)
    y_d, dx_d, dW_d = direct_magnitudes(x, W, b, pad, dy)
    columns = y_slow.size // c_out

    exact = pair(c_in, c_out, pad, np.random.default_rng(0))[0]
    exact.params["W"][...], exact.params["b"][...] = W, b
    y = exact.forward(x.astype(np.float64))
    dx = exact.backward(dy.astype(np.float64))
    assert np.all(np.abs(y_fast - y) <= gamma(c_in + 60) * y_w)
    assert np.all(np.abs(y_slow - y) <= gamma(9 * c_in + 1) * y_d)
    assert np.all(np.abs(y_fast - y_slow) <= gamma(c_in + 60) * y_w + gamma(9 * c_in + 1) * y_d)
    assert np.all(np.abs(dx_fast - dx) <= gamma(c_out + 60) * dx_w)
    assert np.all(np.abs(dx_slow - dx) <= gamma(c_out + 10) * dx_d)
    assert np.all(np.abs(fast.grads["W"] - exact.grads["W"]) <= gamma(tiles + 80) * dW_w)
    assert np.all(np.abs(slow.grads["W"] - exact.grads["W"]) <= gamma(columns + 1) * dW_d)


# -- the choice of path, dtypes and errors ----------------------------------------------------------


def test_the_layer_chooses_winograd_for_3x3_stride_1_from_16_input_channels():
    assert Conv2D(16, 8, 3)._choose_path() == "winograd"
    assert Conv2D(15, 8, 3)._choose_path() == "im2col"
    assert Conv2D(1, 64, 3)._choose_path() == "im2col"
    assert Conv2D(64, 8, 3, stride=2)._choose_path() == "im2col"
    assert Conv2D(64, 8, 5)._choose_path() == "im2col"
    assert Conv2D(64, 8, 3, algorithm="im2col")._choose_path() == "im2col"
    assert Conv2D(2, 8, 3, algorithm="winograd")._choose_path() == "winograd"


def test_float64_computes_on_im2col_unless_winograd_is_asked_for():
    assert Conv2D(16, 8, 3, dtype=np.float64)._choose_path() == "im2col"
    assert Conv2D(16, 8, 3)._choose_path(np.float64) == "im2col"  # a float32 layer given float64 data
    assert Conv2D(16, 8, 3, dtype=np.float64)._choose_path(np.float32) == "winograd"
    assert Conv2D(16, 8, 3, dtype=np.float64, algorithm="winograd")._choose_path() == "winograd"


def test_a_float64_layer_outputs_exactly_its_bias_where_the_input_window_is_zero():
    """The kink at zero: with a zero bias, blank image regions must give pre-activations of exactly 0, as
    PyTorch's do, or a ReLU behind the layer takes its derivative from the sign of a rounding error. The
    Winograd path, which mixes every tile's inputs before the products, leaves such residues."""
    rng = np.random.default_rng(0)
    x = np.zeros((2, 16, 12, 12))
    x[:, :, 3:6, 3:6] = rng.random((2, 16, 3, 3))  # a patch on a blank background, as a digit on MNIST's
    blank = np.ones((12, 12), bool)
    blank[2:7, 2:7] = False  # outputs whose 3x3 window touches the patch
    layer = Conv2D(16, 8, 3, rng=rng, dtype=np.float64)
    assert np.all(layer.forward(x)[:, :, blank] == 0.0)
    winograd = Conv2D(16, 8, 3, dtype=np.float64, algorithm="winograd")
    winograd.params["W"][...] = layer.params["W"]
    assert np.any(winograd.forward(x)[:, :, blank] != 0.0)


def test_a_float64_layer_computes_in_float64_on_the_winograd_path():
    rng = np.random.default_rng(0)
    layer = Conv2D(3, 2, 3, rng=rng, dtype=np.float64, algorithm="winograd")
    x = rng.standard_normal((2, 3, 6, 6))
    y = layer.forward(x)
    assert y.dtype == np.float64 and layer.backward(np.ones_like(y)).dtype == np.float64
    assert layer.grads["W"].dtype == np.float64
    # a float32 layer given float64 data computes in float64 too, as on the im2col path
    assert Conv2D(3, 2, 3, rng=rng, algorithm="winograd").forward(x).dtype == np.float64


@pytest.mark.parametrize("algorithm", ["im2col", "winograd"])
def test_a_float32_layer_keeps_every_pass_and_buffer_in_float32(algorithm):
    rng = np.random.default_rng(0)
    layer = Conv2D(16, 4, 3, rng=rng, algorithm=algorithm)
    x = rng.standard_normal((2, 16, 6, 6)).astype(np.float32)
    y = layer.forward(x)
    t = layer.jvp(rng.standard_normal((3,) + x.shape).astype(np.float32))
    arrays = {
        "y": y,
        "dx": layer.backward(np.ones_like(y)),
        "t": t,
        "dt": layer.jvp_backward(np.ones_like(t))[0],
        **layer.grads,
    }
    arrays.update(layer._workspace._arrays)  # the scratch buffers: a float64 one would double their memory
    assert {name: a.dtype for name, a in arrays.items() if a.dtype != np.float32} == {}


def test_bad_settings_and_shapes_get_clear_errors():
    with pytest.raises(ValueError, match="algorithm"):
        Conv2D(3, 2, 3, algorithm="fft")
    with pytest.raises(ValueError, match="3x3 kernels at stride 1.*kernel_size=5"):
        Conv2D(3, 2, 5, algorithm="winograd")
    with pytest.raises(ValueError, match="3x3 kernels at stride 1.*stride=2"):
        Conv2D(3, 2, 3, stride=2, algorithm="winograd")
    for algorithm in ("im2col", "winograd"):
        layer = Conv2D(3, 2, 3, padding="valid", algorithm=algorithm)
        with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), received \(2, 4, 5, 5\)"):
            layer.forward(np.zeros((2, 4, 5, 5), np.float32))
        with pytest.raises(ValueError, match="smaller than the kernel"):
            layer.forward(np.zeros((2, 3, 2, 5), np.float32))


def test_a_float64_network_through_the_winograd_path_passes_the_gradient_check():
    """A float64 network stays float64 through every fast path: a float32 step anywhere would miss
    the 1e-6 bound of the central-difference check by orders of magnitude."""
    from minidl.layers import Dense, Flatten, MaxPool2D, ReLU, Sequential

    rng = np.random.default_rng(4)
    network = Sequential(
        Conv2D(16, 3, 3, rng=rng, algorithm="winograd"), MaxPool2D(2), ReLU(), Flatten(), Dense(12, 2, rng=rng)
    )
    network.astype(np.float64)
    assert network.layers[0]._choose_path() == "winograd"
    for layer in network.layers:
        if "b" in layer.params:
            layer.params["b"][...] = rng.standard_normal(layer.params["b"].shape)
    x = rng.standard_normal((2, 16, 4, 4))
    assert network.forward(x).dtype == np.float64
    errors = check_layer(network, x, rng=4)
    assert max(errors.values()) < 1e-6, errors


def _passes_on_fresh_layers(make_layer, x, tangents, dts, dy):
    """Each pass of a convolution run alone, on a new layer that ran only the passes it needs first."""
    fresh = make_layer()
    y = fresh.forward(x).copy()
    results, dW = {"y": y}, np.zeros_like(fresh.grads["W"])  # the gradients added in the penalty's order
    for k, (t, dt) in enumerate(zip(tangents, dts)):
        fresh = make_layer()
        fresh.forward(x)
        results[f"jvp {k}"] = fresh.jvp(t).copy()
        fresh = make_layer()
        fresh.forward(x)
        fresh.jvp(t)
        results[f"jvp_backward {k}"] = fresh.jvp_backward(dt)[0].copy()
        dW += fresh.grads["W"]
    fresh = make_layer()
    fresh.forward(x)
    results["dx"] = fresh.backward(dy).copy()
    results["dW"], results["db"] = dW + fresh.grads["W"], fresh.grads["b"].copy()
    return results


@pytest.mark.parametrize("algorithm", ["auto", "im2col"])
@pytest.mark.parametrize("n_tangents", [1, 3])
def test_interleaved_passes_give_what_each_pass_gives_on_a_fresh_layer(algorithm, n_tangents):
    """The contractive penalty runs forward, then jvp and jvp_backward per chunk of tangents, then backward.
    A pass that wrote into a scratch array another pass still reads (the forward pass's V or cols, read
    again by backward) would change a later result: every result must equal the same pass run on a
    fresh layer. One tangent per chunk gives the tangent pass the forward pass's shapes, so a buffer
    shared between the passes would be reused rather than reallocated."""
    rng = np.random.default_rng(5)
    weights = rng.standard_normal((8, 16, 3, 3)).astype(np.float32) / 12

    def make_layer():
        layer = Conv2D(16, 8, 3, algorithm=algorithm)
        layer.params["W"][...] = weights
        return layer

    expected_path = "winograd" if algorithm == "auto" else "im2col"
    assert make_layer()._choose_path(np.float32) == expected_path  # float32, 16 input channels
    x = rng.standard_normal((2, 16, 9, 10)).astype(np.float32)
    tangents = [rng.standard_normal((n_tangents,) + x.shape).astype(np.float32) for _ in range(2)]
    dts = [rng.standard_normal((n_tangents, 2, 8, 9, 10)).astype(np.float32) for _ in range(2)]
    dy = rng.standard_normal((2, 8, 9, 10)).astype(np.float32)
    expected = _passes_on_fresh_layers(make_layer, x, tangents, dts, dy)

    layer = make_layer()
    results = {"y": layer.forward(x).copy()}
    for k, (t, dt) in enumerate(zip(tangents, dts)):
        results[f"jvp {k}"] = layer.jvp(t).copy()
        results[f"jvp_backward {k}"] = layer.jvp_backward(dt)[0].copy()
    results["dx"] = layer.backward(dy)
    results["dW"], results["db"] = layer.grads["W"], layer.grads["b"]
    for name, value in expected.items():
        # the same operations on the same data; the tolerance only covers BLAS's summation order
        np.testing.assert_allclose(results[name], value, rtol=1e-5, atol=1e-5 * np.abs(value).max(), err_msg=name)
