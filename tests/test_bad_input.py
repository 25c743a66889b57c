"""Bad input gets a clear error before anything is computed, never a crash or a silent answer: arrays of
the wrong shape or type handed to a backward or tangent pass, kernels given inconsistent arguments,
losses given targets outside [0, 1] or an empty batch, inputs too small for a layer or of a layout or dtype
it does not take, settings out of range, a backward pass before its forward pass; every message names the
function or layer."""

import re

import numpy as np
import pytest

from minidl import kernels, reference
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
)
from minidl.optim import Adam

# (layer factory, the shape of one valid input)
CASES = [
    (lambda dtype: Dense(3, 2, rng=0, dtype=dtype), (4, 3)),
    (lambda dtype: Conv2D(2, 3, rng=0, dtype=dtype), (2, 2, 5, 5)),
    (lambda dtype: Conv2DTranspose(2, 3, rng=0, dtype=dtype), (2, 2, 3, 3)),
    (lambda dtype: MaxPool2D(), (2, 3, 8, 8)),
    (lambda dtype: ReLU(), (2, 3, 4)),
    (lambda dtype: Sigmoid(), (2, 3, 4)),
    (lambda dtype: Tanh(), (2, 3, 4)),
    (lambda dtype: Identity(), (2, 3, 4)),
    (lambda dtype: ZeroPad2D(1), (2, 1, 3, 3)),
    (lambda dtype: Flatten(), (2, 3, 4)),
    (lambda dtype: Reshape((2, 6)), (2, 12)),
    (lambda dtype: Sequential(Dense(3, 4, rng=0, dtype=dtype), ReLU(), Dense(4, 2, rng=1, dtype=dtype)), (4, 3)),
]
IDS = [
    "Dense",
    "Conv2D",
    "Conv2DTranspose",
    "MaxPool2D",
    "ReLU",
    "Sigmoid",
    "Tanh",
    "Identity",
    "ZeroPad2D",
    "Flatten",
    "Reshape",
    "Sequential",
]
TANGENT_CASES = [(case, name) for case, name in zip(CASES, IDS) if name != "Sequential"]  # no tangent pass


def wrong_shapes(shape):
    """Shapes a careless caller might pass instead of ``shape``: another batch size, the same number of
    values laid out differently, one value more per row, an extra axis."""
    shapes = [(2 * shape[0],) + shape[1:], (1,) + shape, shape[:-1] + (shape[-1] + 1,)]
    if len(shape) >= 2 and shape[0] != shape[1]:
        shapes.append((shape[1], shape[0]) + shape[2:])
    return shapes


def message(layer, method, name, expected, received):
    wanted = str(tuple(expected)).replace("'", "")
    return re.escape(f"{layer!r}.{method}: expected {name} of shape {wanted}, received {tuple(received)}.")


def grads_of(layer):
    return {name: grad.copy() for name, grad in layer.grads.items()}


def assert_unchanged(layer, before):
    for name, grad in layer.grads.items():
        np.testing.assert_array_equal(grad, before[name], err_msg=name)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_backward_checks_dy_against_the_cached_output(case, dtype):
    build, shape = case
    layer = build(dtype)
    rng = np.random.default_rng(0)
    y = layer.forward(rng.standard_normal(shape).astype(dtype))
    before = grads_of(layer)
    for wrong in wrong_shapes(y.shape):
        with pytest.raises(ValueError, match=message(layer, "backward", "dy", y.shape, wrong)):
            layer.backward(np.ones(wrong, dtype))
    with pytest.raises(TypeError, match=r"backward: expected dy to be a numpy array of floats, received list"):
        layer.backward(np.ones(y.shape, dtype).tolist())
    with pytest.raises(TypeError, match=r"backward: expected dy of a floating dtype, received int64"):
        layer.backward(np.ones(y.shape, np.int64))
    assert_unchanged(layer, before)
    assert layer.backward(np.ones(y.shape, dtype)).shape == shape  # the cache survived the bad calls


@pytest.mark.parametrize("case", [case for case, _ in TANGENT_CASES], ids=[name for _, name in TANGENT_CASES])
def test_tangent_passes_check_t_and_dt(case):
    build, shape = case
    layer = build(np.float64)
    rng = np.random.default_rng(0)
    y = layer.forward(rng.standard_normal(shape))
    k = 3
    for wrong in [shape, (k, 2 * shape[0]) + shape[1:], (k,) + shape[:-1] + (shape[-1] + 1,)]:
        with pytest.raises(ValueError, match=message(layer, "jvp", "t", ("K",) + shape, wrong)):
            layer.jvp(np.ones(wrong))
    with pytest.raises(RuntimeError, match="without a preceding jvp"):
        layer.jvp_backward(np.ones((k,) + y.shape))
    t_out = layer.jvp(rng.standard_normal((k,) + shape))
    assert t_out.shape == (k,) + y.shape
    before = grads_of(layer)
    for wrong in [y.shape, (k + 1,) + y.shape, (k,) + y.shape[:-1] + (y.shape[-1] + 1,)]:
        with pytest.raises(ValueError, match=message(layer, "jvp_backward", "dt", t_out.shape, wrong)):
            layer.jvp_backward(np.ones(wrong))
    with pytest.raises(TypeError, match="jvp_backward: expected dt of a floating dtype, received bool"):
        layer.jvp_backward(np.ones(t_out.shape, bool))
    assert_unchanged(layer, before)
    assert layer.jvp_backward(np.ones(t_out.shape))[0].shape == (k,) + shape
    layer.forward(rng.standard_normal(shape))  # a new forward pass ends the tangent pass
    with pytest.raises(RuntimeError, match="without a preceding jvp"):
        layer.jvp_backward(np.ones(t_out.shape))


def test_maxpool_backward_with_an_unpooled_gradient_is_an_error_not_a_crash():
    layer = MaxPool2D()
    layer.forward(np.zeros((2, 3, 8, 8), np.float32))
    with pytest.raises(
        ValueError,
        match=r"MaxPool2D\(pool_size=2\)\.backward: expected dy of shape "
        r"\(2, 3, 4, 4\), received \(2, 3, 8, 8\)",
    ):
        layer.backward(np.ones((2, 3, 8, 8), np.float32))


def test_conv2d_transpose_backward_with_a_larger_batch_is_an_error_not_a_crash():
    layer = Conv2DTranspose(2, 3)
    layer.forward(np.zeros((2, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3, 8, 8\), received \(8, 3, 8, 8\)"):
        layer.backward(np.ones((8, 3, 8, 8), np.float32))


def test_conv2d_backward_refuses_a_gradient_with_the_right_size_and_the_wrong_shape():
    layer = Conv2D(2, 3)
    layer.forward(np.zeros((2, 2, 4, 4), np.float32))
    with pytest.raises(ValueError, match=r"expected dy of shape \(2, 3, 4, 4\), received \(1, 3, 4, 8\)"):
        layer.backward(np.ones((1, 3, 4, 8), np.float32))


# -- the pooling kernels themselves ------------------------------------------------------------

IMPLEMENTATIONS = pytest.mark.parametrize("implementation", [kernels, reference], ids=["numba", "numpy"])


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    "y_shape, argmax_shape",
    [
        ((3, 4, 4, 2), (3, 4, 3, 2)),  # argmax differs from y
        ((3, 8, 8, 2), (3, 8, 8, 2)),  # windows beyond the image
        ((3, 4, 4, 4), (3, 4, 4, 4)),  # more images than x has
        ((1, 4, 4, 2), (1, 4, 4, 2)),  # fewer channels than x
    ],
)
def test_maxpool_forward_kernel_checks_its_shapes(implementation, y_shape, argmax_shape):
    x = np.zeros((3, 8, 8, 2))  # (C, H, W, N)
    with pytest.raises(ValueError, match="maxpool_forward: expected a positive pool, and y and argmax of shape"):
        implementation.maxpool_forward(x, 2, np.empty(y_shape), np.empty(argmax_shape, np.int64))
    with pytest.raises(ValueError, match="maxpool_forward: expected a positive pool"):
        implementation.maxpool_forward(x, 0, np.empty((3, 4, 4, 2)), np.empty((3, 4, 4, 2), np.int64))


@IMPLEMENTATIONS
@pytest.mark.parametrize("name", ["maxpool_backward", "maxpool_gather"])
def test_the_kernels_that_follow_indices_check_shapes_and_every_index(implementation, name):
    kernel = getattr(implementation, name)

    def call(pooled, argmax, image):  # the arguments in each kernel's order
        return kernel(pooled, argmax, 2, image) if name == "maxpool_backward" else kernel(image, argmax, 2, pooled)

    x = np.arange(3 * 8 * 8 * 2, dtype=np.float64).reshape(3, 8, 8, 2)
    argmax = np.empty((3, 4, 4, 2), np.int64)
    implementation.maxpool_forward(x, 2, np.empty((3, 4, 4, 2)), argmax)
    with pytest.raises(ValueError, match=f"{name}: expected a positive pool"):
        call(np.ones((3, 8, 8, 2)), argmax, np.empty((3, 8, 8, 2)))
    with pytest.raises(ValueError, match=f"{name}: expected a positive pool"):
        call(np.ones((3, 4, 4, 2)), argmax, np.empty((3, 8, 8, 1)))
    call(np.ones((3, 4, 4, 2)), argmax, np.empty((3, 8, 8, 2)))  # consistent arguments pass
    # outside the image; in the window's rows but another column (48 = row 6, column 0); another window
    for bad in (-1, 64, 10**12, 48, 0):
        wrong = argmax.copy()
        wrong[1, 3, 3, 1] = bad
        with pytest.raises(ValueError, match=f"{name}: argmax holds an index outside its window"):
            call(np.ones((3, 4, 4, 2)), wrong, np.empty((3, 8, 8, 2)))


@IMPLEMENTATIONS
def test_the_loss_kernels_check_their_shapes(implementation):
    x = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match="negative_capped_abs: expected out of the shape of x"):
        implementation.negative_capped_abs(x.reshape(-1), 43.0, np.empty(11, np.float32))
    arrays = dict(t=x, e=x, log1p_e=x, dx=np.empty_like(x), terms=np.empty_like(x), losses=np.empty(3))
    implementation.bce_logits_rows(
        x, *(arrays[name] for name in ("t", "e", "log1p_e")), 1.0, arrays["losses"], arrays["dx"], arrays["terms"]
    )  # consistent shapes pass
    for name, wrong in (("terms", np.empty((3, 3), np.float32)), ("losses", np.empty(2)), ("t", x[:2])):
        bad = dict(arrays, **{name: wrong})
        with pytest.raises(ValueError, match=r"bce_logits_rows: expected t, e, log1p_e, dx and terms of the shape"):
            implementation.bce_logits_rows(
                x, bad["t"], bad["e"], bad["log1p_e"], 1.0, bad["losses"], bad["dx"], bad["terms"]
            )


# -- losses and penalties ------------------------------------------------------------------------


def cross_entropies(target):
    """(name, what it calls the targets, call) for every loss that takes targets in [0, 1]."""
    n, d = target.shape
    prediction = np.full(target.shape, 0.5)
    latent = np.zeros((n, 2))
    return [
        ("bce", "targets", lambda: bce(prediction, target)),
        ("bce_with_logits", "targets", lambda: bce_with_logits(prediction, target, "sum")),
        ("elbo", "x", lambda: elbo(target, prediction, latent, latent)),
        ("elbo", "x", lambda: elbo(target, np.zeros((n, 2 * d)), latent, latent, "gaussian")),
    ]


@pytest.mark.parametrize(
    "bad, found",
    [
        (2.0, "values from 0 to 2"),
        (-1.0, "values from -1 to 1"),
        (255.0, "values from 0 to 255"),
        (np.nan, "NaN"),
        (np.inf, "values from 0 to inf"),
        (-np.inf, "values from -inf to 1"),
    ],
)
def test_cross_entropies_refuse_targets_outside_the_unit_interval(bad, found):
    target = np.array([[0.0, 0.5, 1.0], [0.25, bad, 0.75]])
    for name, what, call in cross_entropies(target):
        with pytest.raises(
            ValueError,
            match=rf"^{name}: expected {what} in \[0, 1\], received {found}\. "
            r".*divide uint8 pixels by 255",
        ):
            call()


def test_uint8_images_are_refused_and_the_bounds_accepted():
    pixels = np.array([[0, 128, 255], [3, 4, 5]], dtype=np.uint8)
    for _, _, call in cross_entropies(pixels):
        with pytest.raises(ValueError, match="values from 0 to 255"):
            call()
    for _, _, call in cross_entropies(pixels / 255.0) + cross_entropies(np.array([[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]])):
        call()


EMPTY_CALLS = {
    "mse": lambda shape: mse(np.zeros(shape), np.zeros(shape)),
    "bce": lambda shape: bce(np.full(shape, 0.5), np.zeros(shape)),
    "bce_with_logits": lambda shape: bce_with_logits(np.zeros(shape), np.zeros(shape)),
    "kl_sparsity": lambda shape: kl_sparsity(np.full(shape, 0.5)),
    "gaussian_kl": lambda shape: gaussian_kl(np.zeros(shape), np.zeros(shape)),
    "gaussian_nll": lambda shape: gaussian_nll(np.zeros(shape), np.zeros(shape), np.zeros(shape)),
    "elbo": lambda shape: elbo(np.zeros(shape), np.zeros(shape), np.zeros((shape[0], 2)), np.zeros((shape[0], 2))),
}


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
@pytest.mark.parametrize("name", sorted(EMPTY_CALLS))
def test_losses_refuse_an_empty_batch(name, shape):
    received = re.escape(str(shape))
    with pytest.raises(ValueError, match=rf"^{name}: expected a non-empty batch .*received shape {received}"):
        EMPTY_CALLS[name](shape)


def test_a_zero_dimensional_batch_is_refused_and_a_one_dimensional_one_is_a_batch_of_numbers():
    with pytest.raises(ValueError, match=r"^mse: expected a non-empty batch .*received shape \(\)"):
        mse(np.ones(()), np.ones(()))
    assert mse(np.zeros(3), np.ones(3))[0] == 1.0


@pytest.mark.parametrize("mode", ["closed_form", "exact", "hutchinson"])
def test_the_contractive_penalty_refuses_an_empty_batch(mode):
    encoder = Sequential(Dense(4, 3, rng=0, dtype=np.float64), Sigmoid())
    x = np.zeros((0, 4))
    encoder.forward(x)
    with pytest.raises(ValueError, match=r"contractive_penalty: expected a non-empty batch.*\(0, 4\)"):
        contractive_penalty(encoder, x, mode, rng=np.random.default_rng(0))


def test_a_network_cast_to_another_dtype_forgets_its_cache():
    model = Sequential(Dense(4, 3, rng=0), Sigmoid())
    model.forward(np.zeros((2, 4), np.float32))
    model.astype(np.float64)
    with pytest.raises(RuntimeError, match="without a cached forward pass"):
        model.backward(np.ones((2, 3)))


@pytest.mark.parametrize(
    "make, name, value",
    [
        (lambda v: Dense(v, 3), "in_features", True),
        (lambda v: Dense(2, v), "out_features", 0),
        (lambda v: MaxPool2D(v), "pool_size", 2.0),
        (lambda v: Conv2D(1, v), "out_channels", False),
        (lambda v: Conv2D(1, 2, kernel_size=v), "kernel_size", -3),
    ],
)
def test_layer_sizes_are_positive_integers_and_a_bool_is_not_one(make, name, value):
    with pytest.raises(ValueError, match=rf"^Expected {name} to be a positive integer\. Received: {name}={value!r}$"):
        make(value)


@pytest.mark.parametrize(
    "name, call",
    [
        ("bce", lambda a, b: bce(a, b)),
        ("bce_with_logits", lambda a, b: bce_with_logits(a, b)),
        ("reparameterize", lambda a, b: reparameterize(a, b, a)),
        ("reparameterize", lambda a, b: reparameterize(a, a, b)),
        ("gaussian_kl", lambda a, b: gaussian_kl(a, b)),
        ("gaussian_nll", lambda a, b: gaussian_nll(a, b, a)),
        ("gaussian_nll", lambda a, b: gaussian_nll(a, a, b)),
        ("elbo", lambda a, b: elbo(a, b, np.zeros((2, 1)), np.zeros((2, 1)))),
    ],
)
def test_shape_errors_name_the_function(name, call):
    with pytest.raises(ValueError, match=f"^{name}: .*shapes differ"):
        call(np.zeros((2, 3)), np.zeros((2, 4)))


@pytest.mark.parametrize("shape", [(1, 1, 2, 5), (1, 1, 5, 2)], ids=["short", "narrow"])
def test_an_input_too_small_along_one_axis_is_rejected(shape):
    with pytest.raises(ValueError, match="smaller than the kernel"):
        Conv2D(1, 1, 3, padding="valid").forward(np.ones(shape, np.float32))  # one output size is exactly 0
    with pytest.raises(ValueError, match="smaller than one window"):
        MaxPool2D(3).forward(np.ones(shape, np.float32))
    transpose = Conv2DTranspose(1, 1, kernel_size=2, stride=1, padding=1)  # size 1 -> 0, size 4 -> 3
    with pytest.raises(ValueError, match="leaves no output"):
        transpose.forward(np.ones((1, 1) + ((1, 4) if shape[2] == 2 else (4, 1)), np.float32))


@pytest.mark.parametrize("layer", [MaxPool2D(), ZeroPad2D(1)], ids=repr)
def test_pooling_and_padding_say_what_layout_they_expect(layer):
    with pytest.raises(ValueError, match=r"expected input of shape \(N, C, H, W\), received \(2, 3\)"):
        layer.forward(np.ones((2, 3)))


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: Dense(3, 0), "out_features=0"),
        (lambda: Conv2D(0, 3), "in_channels=0"),
        (lambda: Conv2D(3, 0), "out_channels=0"),
        (lambda: Reshape(()), "non-empty shape"),
        (lambda: Reshape((2, 0)), "positive sizes"),
        (lambda: Adam([("p", np.ones(2), np.ones(2))], beta2=1.0), "beta2=1.0"),
    ],
)
def test_settings_are_validated_by_name(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_fresh_layers_refuse_backward_and_jvp_backward_before_their_forward_passes():
    layer = Sigmoid()
    with pytest.raises(RuntimeError, match="without a cached forward"):
        layer.backward(np.ones((1, 2)))
    layer.forward(np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match="without a preceding jvp"):
        layer.jvp_backward(np.ones((1, 1, 2)))


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool, np.complex128, np.longdouble])
def test_other_dtypes_are_a_clear_type_error(dtype):
    if np.dtype(dtype) == np.float64:  # platforms whose long double is a double
        pytest.skip("long double is float64 here")
    with pytest.raises(
        TypeError,
        match=r"MaxPool2D\(pool_size=2\): expected x of dtype float16, float32 "
        rf"or float64, received {np.dtype(dtype)}",
    ):
        MaxPool2D().forward(np.zeros((1, 1, 2, 2), dtype))
