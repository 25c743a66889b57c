"""Loading a checkpoint checks the whole file before anything is assigned, and every error names the file."""

import json

import numpy as np
import pytest

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.checkpoints import CheckpointError, array_identity, differences, read_checkpoint
from autoencoders.models import SparseAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig

IMAGE = (1, 12, 12)
CONFIG = TrainingConfig(epochs=1, batch_size=16)


def tiny_model(seed=0):
    rng = np.random.default_rng(seed)
    return SparseAutoencoder(conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
                             conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng))


@pytest.fixture(scope="module")
def good(tmp_path_factory):
    """The arrays and meta of a valid checkpoint."""
    path = tmp_path_factory.mktemp("good") / "good.npz"
    images = np.random.default_rng(7).random((32,) + IMAGE, dtype=np.float32)
    Trainer(tiny_model(), CONFIG, path, progress=False).fit(images)
    with np.load(path, allow_pickle=False) as data:
        arrays = {key: data[key] for key in data.files}
    return arrays, json.loads(str(arrays.pop("meta")))


def with_meta(arrays, meta):
    return {**arrays, "meta": np.array(json.dumps(meta))}


def first(arrays, prefix):
    return next(key for key in arrays if key.startswith(prefix))


def changed(arrays, key, value):
    return {**arrays, key: value}


DAMAGES = {
    "no meta": (lambda a, m: a, "no 'meta' entry"),
    "meta not JSON": (lambda a, m: {**a, "meta": np.array("{epoch: 1")}, "damaged checkpoint metadata"),
    "meta not a string": (lambda a, m: {**a, "meta": np.zeros(3)}, "'meta' should be a 0-d string"),
    "meta without epoch": (lambda a, m: with_meta(a, {k: v for k, v in m.items() if k != "epoch"}),
                           r"missing \['epoch'\]"),
    "negative epoch": (lambda a, m: with_meta(a, {**m, "epoch": -1}), "non-negative integer"),
    "history too short": (lambda a, m: with_meta(a, {**m, "history": []}), "list of 1 records"),
    "bad generator state": (lambda a, m: with_meta(a, {**m, "rng": {"bit_generator": "PCG64", "state": 3}}),
                            "generator state cannot be restored"),
    "missing optimizer entry": (lambda a, m: with_meta({k: v for k, v in a.items() if not k.startswith("optim/m/")},
                                                       m), r"missing \['optim/m/"),
    "unexpected entry": (lambda a, m: with_meta({**a, "param/extra": np.zeros(2, np.float32)}, m),
                         r"unexpected \['param/extra'\]"),
    "optimizer state of another shape": (
        lambda a, m: with_meta(changed(a, first(a, "optim/v/"), np.zeros(3, np.float32)), m),
        r"file has float32 \(3,\)"),
    "optimizer state of another dtype": (
        lambda a, m: with_meta(changed(a, first(a, "optim/m/"), a[first(a, "optim/m/")].astype(np.float64)), m),
        "file has float64"),
    "parameter of string dtype": (
        lambda a, m: with_meta(changed(a, first(a, "param/"), a[first(a, "param/")].astype(str)), m), "file has <U"),
    "non-finite parameter": (
        lambda a, m: with_meta(changed(a, first(a, "param/"), np.full_like(a[first(a, "param/")], np.inf)), m),
        "non-finite values"),
}


@pytest.mark.parametrize("name", list(DAMAGES))
def test_a_damaged_checkpoint_changes_nothing_and_names_the_file(tmp_path, good, name):
    damage, message = DAMAGES[name]
    path = tmp_path / "damaged.npz"
    np.savez(path, **damage(*good))
    model = tiny_model(seed=5)
    trainer = Trainer(model, CONFIG, path, progress=False)
    params = {key: value.copy() for key, value in model.params.items()}
    state = trainer.optimizer.state_dict()
    rng_state = trainer.rng.bit_generator.state
    with pytest.raises(CheckpointError, match=f"^{path}: .*{message}"):
        trainer.load_checkpoint()
    assert trainer.epoch == 0 and trainer.history == [] and trainer.rng.bit_generator.state == rng_state
    for key, value in model.params.items():
        np.testing.assert_array_equal(value, params[key])
    for key, value in trainer.optimizer.state_dict().items():
        np.testing.assert_array_equal(value, state[key])


@pytest.mark.parametrize("content", [
    lambda raw: raw[: len(raw) // 2],                                                  # truncated
    lambda raw: raw[:200] + bytes(b ^ 0xFF for b in raw[200:260]) + raw[260:],         # bit-flipped
    lambda raw: b"garbage bytes, not a zip file at all",
])
def test_an_unreadable_checkpoint_names_the_file(tmp_path, good, content):
    source = tmp_path / "source.npz"
    np.savez(source, **with_meta(*good))
    path = tmp_path / "broken.npz"
    path.write_bytes(content(source.read_bytes()))
    with pytest.raises(CheckpointError, match=f"^{path}: cannot be read as a checkpoint"):
        Trainer(tiny_model(), CONFIG, path, progress=False).load_checkpoint()


def test_a_npy_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.zeros(3))
    with pytest.raises(CheckpointError, match=f"^{path}: "):
        read_checkpoint(path)


def test_a_valid_checkpoint_round_trips(tmp_path, good):
    path = tmp_path / "copy.npz"
    np.savez(path, **with_meta(*good))
    trainer = Trainer(tiny_model(seed=5), CONFIG, path, progress=False)
    trainer.load_checkpoint()
    assert trainer.epoch == 1
    np.testing.assert_array_equal(trainer.model.params["encoder.conv2d_1.W"], good[0]["param/encoder.conv2d_1.W"])


def test_differences_name_each_field_old_to_new():
    old = {"settings": {"epochs": 2, "alphas": (0.0, 1.0)}, "data": {"sha256": "a" * 64}}
    new = {"settings": {"epochs": 3, "alphas": [0.0, 1.0]}, "data": {"sha256": "b" * 64}, "kind": "vae"}
    assert differences(old, new) == ["settings.epochs: 2 -> 3", f"data.sha256: {'a' * 12}… -> {'b' * 12}…",
                                     "kind: (not recorded) -> vae"]
    assert differences(old, old) == []


def test_array_identity_sees_content_shape_and_dtype():
    x = np.arange(6, dtype=np.float32)
    assert array_identity(x) == array_identity(x.copy())
    assert array_identity(x) != array_identity(x.reshape(2, 3))
    assert array_identity(x) != array_identity(x.astype(np.float64))
    y = x.copy()
    y[3] += 1e-6
    assert array_identity(x)["sha256"] != array_identity(y)["sha256"]
