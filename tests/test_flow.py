"""Gradient flow: every statistic equals a direct NumPy computation; the Trainer records them and a resumed
run reproduces them; the picture of a Sequential names every layer with its shapes."""

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import SparseAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig
from minidl.flow import (
    SATURATION,
    TRACE_POINTS,
    FlowRecorder,
    activation_layers,
    activation_statistics,
    alive_units,
    draw,
    table,
    trace,
)
from minidl.layers import Conv2D, Dense, Flatten, MaxPool2D, ReLU, Sequential, Sigmoid, Tanh
from minidl.losses import mse
from minidl.optim import Adam

IMAGE = (1, 12, 12)


def direct_norm(array) -> float:
    return float(np.sqrt(np.sum(np.asarray(array, dtype=np.float64) ** 2)))


def small_network(rng):
    return Sequential(Dense(5, 4, rng=rng), ReLU(), Dense(4, 3, rng=rng), Sigmoid())


def one_step(network, x, rng):
    network.zero_grad()
    y = network.forward(x)
    network.backward(rng.standard_normal(y.shape).astype(np.float32))


# -- parameters ----------------------------------------------------------------------------------------------


def test_grad_norms_and_update_ratios_equal_a_direct_computation_after_adam_steps():
    rng = np.random.default_rng(0)
    network = small_network(rng)
    optimizer = Adam(network.parameters(), lr=1e-2)
    recorder = FlowRecorder(optimizer.parameters, network)
    expected = {name: {"grad_norm": [], "update_ratio": []} for name in network.params}
    for _ in range(3):
        one_step(network, rng.standard_normal((6, 5)).astype(np.float32), rng)
        before = {name: param.copy() for name, param in network.params.items()}
        recorder.before_step()
        optimizer.step()
        recorder.after_step()
        for name, param in network.params.items():
            expected[name]["grad_norm"].append(direct_norm(network.grads[name]))
            weight = direct_norm(before[name])
            change = direct_norm(param.astype(np.float64) - before[name])
            expected[name]["update_ratio"].append(change / weight if weight > 0 else math.nan)
    record = recorder.summary()
    assert record["steps"] == 3 and set(record["parameters"]) == set(network.params)
    for name, statistics in record["parameters"].items():
        assert statistics["grad_norm"] == pytest.approx(np.mean(expected[name]["grad_norm"]), rel=1e-5)
        assert statistics["update_ratio"] == pytest.approx(np.nanmean(expected[name]["update_ratio"]), rel=1e-5)
    # a bias starts at zero: its first update has no ratio, so the mean is over the two later steps
    assert math.isnan(expected["dense_1.b"]["update_ratio"][0])
    assert record["parameters"]["dense_1.W"]["update_ratio"] > 0


def test_an_update_ratio_no_step_defines_is_none_not_nan():
    rng = np.random.default_rng(1)
    network = small_network(rng)
    optimizer = Adam(network.parameters())
    recorder = FlowRecorder(optimizer.parameters, network)
    one_step(network, rng.standard_normal((4, 5)).astype(np.float32), rng)
    recorder.before_step()
    optimizer.step()
    recorder.after_step()
    record = recorder.summary(with_trace=True)
    assert record["parameters"]["dense_1.b"]["update_ratio"] is None  # the bias was all zero before the step
    assert record["parameters"]["dense_1.b"]["update_ratio_trace"] == [None]
    json.dumps(record, allow_nan=False)


# -- activations ---------------------------------------------------------------------------------------------


def test_dead_and_zero_fractions_of_a_relu_with_known_inputs():
    # units 0 and 1 never have a positive input (0 itself gives a zero output), units 2-4 do at least once
    x = np.array(
        [[-1.0, 0.0, 2.0, -3.0, 1.0], [-2.0, 0.0, -1.0, -1.0, 1.0], [-0.5, 0.0, -1.0, 4.0, 1.0]], dtype=np.float32
    )
    relu = ReLU()
    relu.forward(x)
    statistics = activation_statistics(relu)
    assert statistics["dead_fraction"] == pytest.approx(2 / 5)
    assert statistics["zero_fraction"] == pytest.approx(np.mean(x <= 0))


def test_dead_fraction_of_relus_after_a_convolution_images_last():
    rng = np.random.default_rng(2)
    network = Sequential(Conv2D(1, 4, 3, padding="same", rng=rng), MaxPool2D(2), ReLU())
    network[0].params["b"][:2] = -100.0  # two filters whose every output is negative: dead units
    x = rng.random((16, 1, 6, 6), dtype=np.float32)
    before_relu = network[1].forward(network[0].forward(x))
    network.forward(x)
    statistics = activation_statistics(network[2])
    alive = np.any(before_relu > 0, axis=0)  # (4, 3, 3)
    assert statistics["dead_fraction"] == pytest.approx(1 - alive.mean())
    assert statistics["dead_fraction"] >= 0.5
    assert statistics["zero_fraction"] == pytest.approx(np.mean(before_relu <= 0))


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 40), st.integers(1, 30), st.floats(0.0, 1.0), st.booleans(), st.integers(0, 2**32 - 1))
def test_alive_units_counts_units_active_for_some_sample_in_any_layout(n, units, density, images_last, seed):
    rng = np.random.default_rng(seed)
    # a sparse mask in which whole units are off, so that both dead and live units occur
    mask = (rng.random((n, units)) < density) & (rng.random(units) < 0.7)
    if images_last:  # the batch axis fastest in memory, as after a convolution
        mask = np.ascontiguousarray(mask.T).T
    assert alive_units(mask) == np.count_nonzero(mask.any(axis=0))
    images = mask.reshape(n, 1, units, 1)
    assert alive_units(images) == np.count_nonzero(mask.any(axis=0))


def test_saturated_fraction_of_a_sigmoid_and_a_tanh_with_known_inputs():
    # sigmoid(x) < 1e-3 exactly when x < log(1e-3 / (1 - 1e-3)) = -6.9068; tanh |y| > 1 - 1e-3 when |x| > 3.8002
    assert SATURATION == 1e-3
    sigmoid = Sigmoid()
    sigmoid.forward(np.array([[-10.0, -7.0, -6.8, 0.0, 6.8, 7.0, 10.0, 20.0]], dtype=np.float32))
    assert activation_statistics(sigmoid) == {"saturated_fraction": pytest.approx(5 / 8)}
    tanh = Tanh()
    tanh.forward(np.array([[-5.0, -3.7, 0.0, 3.7, 3.9, 5.0]], dtype=np.float32))
    assert activation_statistics(tanh) == {"saturated_fraction": pytest.approx(3 / 6)}


def test_activation_statistics_need_a_training_forward_pass_and_an_activation():
    relu = ReLU()
    assert activation_statistics(relu) == {}
    relu.forward(np.ones((2, 3), dtype=np.float32), training=False)
    assert activation_statistics(relu) == {}
    dense = Dense(3, 2)
    dense.forward(np.ones((2, 3), dtype=np.float32))
    assert activation_statistics(dense) == {}


def test_activation_layers_are_named_as_the_parameters():
    inner = Sequential(Dense(2, 2), ReLU())
    networks = {"encoder": Sequential(inner, Sigmoid()), "head": Tanh(), "other": Dense(2, 2)}
    assert [name for name, _ in activation_layers(networks)] == [
        "encoder.sequential_1.re_lu_1",
        "encoder.sigmoid_1",
        "head",
    ]


# -- the Trainer ---------------------------------------------------------------------------------------------


def tiny_model(seed=0):
    rng = np.random.default_rng(seed)
    encoder = conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng)
    decoder = conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng)
    return SparseAutoencoder(encoder, decoder)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).random((40,) + IMAGE, dtype=np.float32)


def test_history_records_the_gradient_flow_of_every_parameter_and_activation(tmp_path, images):
    model = tiny_model()
    history = Trainer(model, TrainingConfig(epochs=2, batch_size=16), tmp_path / "c.npz", progress=False).fit(
        images, images[:8]
    )
    names = [name for name, _, _ in model.parameters()]
    activations = [name for name, _ in activation_layers(model.networks)]
    assert "encoder.sigmoid_1" in activations and "decoder.re_lu_1" in activations
    for record in history:
        flow = record["gradient_flow"]
        assert flow["steps"] == 3  # 40 images in batches of 16
        assert list(flow["parameters"]) == names and list(flow["activations"]) == activations
        for name in names:
            statistics = flow["parameters"][name]
            assert statistics["grad_norm"] > 0 and math.isfinite(statistics["grad_norm"])
        assert set(flow["activations"]["encoder.sigmoid_1"]) >= {"saturated_fraction"}
        assert 0 <= flow["activations"]["decoder.re_lu_1"]["dead_fraction"] <= 1
    first, second = history[0]["gradient_flow"], history[1]["gradient_flow"]
    assert first["trace_steps"] == [1, 1, 1] and "trace_steps" not in second  # only the first epoch's trace
    assert len(first["parameters"]["encoder.conv2d_1.W"]["grad_norm_trace"]) == 3
    assert "grad_norm_trace" not in second["parameters"]["encoder.conv2d_1.W"]
    json.dumps(history, allow_nan=False)  # plain, strict JSON


def test_an_epoch_of_one_step_records_the_gradient_left_in_the_model(images):
    model = tiny_model()
    history = Trainer(model, TrainingConfig(epochs=1, batch_size=len(images)), progress=False).fit(images)
    flow = history[0]["gradient_flow"]
    for name, _, grad in model.parameters():  # evaluation adds no gradient: the last step's is still there
        assert flow["parameters"][name]["grad_norm"] == pytest.approx(direct_norm(grad), rel=1e-5)
    assert flow["trace_steps"] == [1]


def test_the_first_epoch_trace_splits_its_steps_into_consecutive_parts():
    recorder = FlowRecorder([("w", np.ones(2, dtype=np.float32), np.zeros(2, dtype=np.float32))])
    grad = recorder.parameters[0][2]
    for step in range(25):
        grad[...] = [step, 0.0]  # grad_norm of step s is s
        recorder.before_step()
        recorder.after_step()
    record = recorder.summary(with_trace=True)
    assert record["trace_steps"] == [3] * 5 + [2] * 5 and len(record["trace_steps"]) == TRACE_POINTS
    assert record["parameters"]["w"]["grad_norm_trace"][:2] == [1.0, 4.0]
    assert record["parameters"]["w"]["grad_norm"] == pytest.approx(12.0)
    assert record["parameters"]["w"]["update_ratio"] == 0.0


def test_a_resumed_run_reproduces_the_gradient_flow(tmp_path, images):
    config = TrainingConfig(epochs=3, batch_size=16, seed=5)
    straight = Trainer(tiny_model(), config, tmp_path / "a.npz", progress=False).fit(images, images[:8])
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16, seed=5), tmp_path / "b.npz", progress=False).fit(
        images, images[:8]
    )
    resumed = Trainer(tiny_model(seed=99), config, tmp_path / "b.npz", progress=False)
    history = resumed.fit(images, images[:8], resume=True)
    assert [record["gradient_flow"] for record in history] == [record["gradient_flow"] for record in straight]
    assert "trace_steps" in history[0]["gradient_flow"]  # restored from the checkpoint


# -- the picture of one batch -------------------------------------------------------------------------------


def test_trace_equals_a_direct_forward_and_backward():
    rng = np.random.default_rng(3)
    network = Sequential(Dense(5, 4, rng=rng), ReLU(), Dense(4, 5, rng=rng), Sigmoid())
    x = rng.random((6, 5), dtype=np.float32)
    flows = trace(network, x, loss=lambda y: mse(y, x))
    grads = {name: grad.copy() for name, grad in network.grads.items()}
    hidden = network[1].forward(network[0].forward(x, training=False), training=False)
    network.zero_grad()
    y = network.forward(x)
    dx = network.backward(mse(y, x)[1])
    assert [flow.name for flow in flows] == network.names
    assert flows[1].forward["mean"] == pytest.approx(float(np.mean(hidden)))
    assert flows[1].forward["std"] == pytest.approx(float(np.std(hidden)))
    assert flows[0].dx_norm == pytest.approx(direct_norm(dx), rel=1e-5)
    for name, grad in grads.items():
        layer, key = name.split(".")
        np.testing.assert_allclose(grad, network.grads[name], rtol=1e-6)
        assert flows[network.names.index(layer)].grad_norms[key] == pytest.approx(direct_norm(grad), rel=1e-5)
    assert flows[3].dy_norm == pytest.approx(direct_norm(mse(y, x)[1]), rel=1e-5)


def test_trace_stops_where_no_input_gradient_is_needed():
    rng = np.random.default_rng(4)
    network = Sequential(Flatten(), Dense(12, 3, rng=rng), ReLU())
    network.needs_input_grad = False
    flows = trace(network, rng.random((2, 3, 4), dtype=np.float32), rng=rng)
    assert flows[0].dx_norm is None and flows[1].dx_norm is None and flows[2].dx_norm is not None
    assert flows[1].grad_norms["W"] > 0


def test_draw_names_every_layer_with_its_shapes():
    rng = np.random.default_rng(5)
    network = conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng)
    x = rng.random((4,) + IMAGE, dtype=np.float32)
    figure = draw(network, x, rng=rng)
    texts = "\n".join(text.get_text() for axis in figure.axes for text in axis.texts)
    shape = (4,) + IMAGE
    for name, layer in zip(network.names, network.layers):
        output = (4,) + layer.output_shape(shape[1:])
        assert f"{name} ({type(layer).__name__})   {shape} → {output}" in texts
        shape = output
    assert "saturated" in texts and "dead" in texts and "‖dx‖" in texts
    import matplotlib.pyplot as plt

    plt.close(figure)
    rows = table(trace(network, x, rng=rng)).splitlines()
    assert len(rows) == 1 + len(network.layers)
    assert all(row.startswith(f"{name} (") for row, name in zip(rows[1:], network.names))


def test_trace_rejects_what_is_not_an_array():
    with pytest.raises(TypeError, match="Expected x to be a numpy array"):
        trace(small_network(0), [[1.0] * 5])


# -- the report ----------------------------------------------------------------------------------------------


def test_the_report_draws_the_gradient_flow_and_says_how_the_code_saturated(tmp_path, images):
    from experiments import report

    histories = {
        kind: Trainer(tiny_model(), TrainingConfig(epochs=2, batch_size=8), progress=False).fit(images)
        for kind in ("sparse", "contractive")
    }
    # the contractive model's code as a collapsed run leaves it: saturated in the last part of epoch 1
    code = histories["contractive"][0]["gradient_flow"]["activations"]["encoder.sigmoid_1"]
    code["saturated_fraction_trace"][-1] = 1.0
    weights = histories["contractive"][0]["gradient_flow"]["parameters"]["encoder.dense_1.W"]
    weights["grad_norm_trace"][-1] = 0.0
    path = tmp_path / "flow.png"
    lines = report._gradient_flow_section(histories, {"history": histories["contractive"]}, path)
    assert path.stat().st_size > 1000 and "![gradient flow](figures/flow.png)" in lines
    text = " ".join(lines)
    assert "to 100% in its last" in text and "(encoder.dense_1) from" in text
    assert "to exactly 0 from part 5 on (after step 4 of 5): no gradient reaches the encoder" in text
    old = {
        kind: [{k: v for k, v in record.items() if k != "gradient_flow"} for record in history]
        for kind, history in histories.items()
    }
    assert report._gradient_flow_section(old, {"history": old["contractive"]}, tmp_path / "none.png") == []
