"""Loading a checkpoint checks the whole file before anything is assigned, and every error names the file."""

import json
import os
import stat

import file_schemas
import numpy as np
import pytest

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.checkpoints import CheckpointError, array_identity, differences, read_checkpoint
from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder, VariationalAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig
from minidl.layers import Sequential
from minidl.serialization import atomic_write, new_file_mode, save_arrays

IMAGE = (1, 12, 12)
CONFIG = TrainingConfig(epochs=1, batch_size=16)


def tiny_model(seed=0, cls=SparseAutoencoder):
    rng = np.random.default_rng(seed)
    return cls(
        conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
        conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng),
    )


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
    "meta without epoch": (
        lambda a, m: with_meta(a, {k: v for k, v in m.items() if k != "epoch"}),
        r"missing \['epoch'\]",
    ),
    "negative epoch": (lambda a, m: with_meta(a, {**m, "epoch": -1}), "non-negative integer"),
    "history too short": (lambda a, m: with_meta(a, {**m, "history": []}), "list of 1 records"),
    "bad generator state": (
        lambda a, m: with_meta(a, {**m, "rng": {"bit_generator": "PCG64", "state": 3}}),
        "generator state cannot be restored",
    ),
    "missing optimizer entry": (
        lambda a, m: with_meta({k: v for k, v in a.items() if not k.startswith("optim/m/")}, m),
        r"missing \['optim/m/",
    ),
    "unexpected entry": (
        lambda a, m: with_meta({**a, "param/extra": np.zeros(2, np.float32)}, m),
        r"unexpected \['param/extra'\]",
    ),
    "optimizer state of another shape": (
        lambda a, m: with_meta(changed(a, first(a, "optim/v/"), np.zeros(3, np.float32)), m),
        r"file has float32 \(3,\)",
    ),
    "optimizer state of another dtype": (
        lambda a, m: with_meta(changed(a, first(a, "optim/m/"), a[first(a, "optim/m/")].astype(np.float64)), m),
        "file has float64",
    ),
    "parameter of string dtype": (
        lambda a, m: with_meta(changed(a, first(a, "param/"), a[first(a, "param/")].astype(str)), m),
        "file has <U",
    ),
    "non-finite parameter": (
        lambda a, m: with_meta(changed(a, first(a, "param/"), np.full_like(a[first(a, "param/")], np.inf)), m),
        "non-finite values",
    ),
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


@pytest.mark.parametrize(
    "content",
    [
        lambda raw: raw[: len(raw) // 2],  # truncated
        lambda raw: raw[:200] + bytes(b ^ 0xFF for b in raw[200:260]) + raw[260:],  # bit-flipped
        lambda raw: b"garbage bytes, not a zip file at all",
    ],
)
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
    assert differences(old, new) == [
        "settings.epochs: 2 -> 3",
        f"data.sha256: {'a' * 12}… -> {'b' * 12}…",
        "kind: (not recorded) -> vae",
    ]
    assert differences(old, old) == []


def test_array_identity_sees_content_shape_and_dtype():
    x = np.arange(6, dtype=np.float32)
    assert array_identity(x) == array_identity(x.copy())
    assert array_identity(x) != array_identity(x.reshape(2, 3))
    assert array_identity(x) != array_identity(x.astype(np.float64))
    y = x.copy()
    y[3] += 1e-6
    assert array_identity(x)["sha256"] != array_identity(y)["sha256"]


# -- format numbers ---------------------------------------------------------------------------------


def test_a_checkpoint_records_its_format_and_the_model_kind_and_settings(good):
    _, meta = good
    assert meta["format"] == 3
    assert meta["model"] == {"kind": "SparseAutoencoder", "rho": 0.05, "sparsity_weight": 0.001}


def test_a_format_2_checkpoint_records_no_kind_and_is_still_resumed(tmp_path, good):
    arrays, meta = good
    path = tmp_path / "old.npz"
    np.savez(path, **with_meta(arrays, {**{k: v for k, v in meta.items() if k != "model"}, "format": 2}))
    trainer = Trainer(tiny_model(seed=5), CONFIG, path, progress=False)
    trainer.load_checkpoint()
    assert trainer.epoch == 1


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda m: {**m, "format": 4}, "format 4, newer than the format 3 this version reads"),
        (lambda m: {**m, "format": "3"}, "format should be an integer"),
        (lambda m: {k: v for k, v in m.items() if k != "model"}, r"missing \['model'\]"),
        (lambda m: {**m, "model": {"rho": 0.05}}, "model should be an object with a 'kind'"),
    ],
)
def test_a_newer_format_or_a_format_3_without_its_model_is_refused(tmp_path, good, change, message):
    arrays, meta = good
    path = tmp_path / "odd.npz"
    np.savez(path, **with_meta(arrays, change(meta)))
    with pytest.raises(CheckpointError, match=f"^{path}: .*{message}"):
        Trainer(tiny_model(seed=5), CONFIG, path, progress=False).load_checkpoint()


# -- model files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", [Autoencoder, ContractiveAutoencoder])
def test_a_model_file_loads_only_into_its_own_kind(tmp_path, cls):
    path = tmp_path / "sparse.npz"
    tiny_model().save(path)
    target = tiny_model(seed=4, cls=cls)  # the same parameter names and shapes
    before = {key: value.copy() for key, value in target.params.items()}
    with pytest.raises(
        ValueError,
        match=f"^{path}: holds the parameters of a model of kind SparseAutoencoder, "
        f"not {cls.__name__}; load it into a SparseAutoencoder model",
    ):
        target.load(path)
    for key, value in target.params.items():
        np.testing.assert_array_equal(value, before[key])
    same = tiny_model(seed=4)
    same.load(path)
    np.testing.assert_array_equal(same.params["encoder.conv2d_1.W"], tiny_model().params["encoder.conv2d_1.W"])


def test_a_model_file_is_refused_by_a_sequential_and_one_without_a_kind_loads_as_before(tmp_path):
    path = tmp_path / "vae.npz"
    VariationalAutoencoder(rng=0).save(path)
    with pytest.raises(ValueError, match="of kind VariationalAutoencoder, not Sequential"):
        Sequential(*VariationalAutoencoder(rng=1).trunk.layers).load(path)
    old = tmp_path / "old.npz"
    np.savez(old, **tiny_model().params)  # a file written before kinds were recorded
    target = tiny_model(seed=4, cls=Autoencoder)
    target.load(old)
    np.testing.assert_array_equal(target.params["decoder.dense_1.W"], tiny_model().params["decoder.dense_1.W"])


# -- file modes ---------------------------------------------------------------------------------------


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_checkpoints_and_model_files_get_the_mode_the_umask_gives_new_files(tmp_path, umask):
    expected = 0o666 & ~umask
    assert new_file_mode() == expected
    images = np.random.default_rng(7).random((16,) + IMAGE, dtype=np.float32)
    checkpoint = tmp_path / "checkpoint.npz"
    Trainer(tiny_model(), CONFIG, checkpoint, progress=False).fit(images)
    tiny_model().save(tmp_path / "model.npz")
    save_arrays(tmp_path / "arrays.npz", {"x": np.ones(2)})
    with atomic_write(tmp_path / "metrics.json", "w") as handle:
        handle.write("{}")
    (tmp_path / "plain.txt").write_text("as open() makes it")
    for name in ("checkpoint.npz", "model.npz", "arrays.npz", "metrics.json", "plain.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == expected, name
    assert (tmp_path / "metrics.json").read_text() == "{}"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")) == []


# -- the schema of the metadata (autoencoders/schemas/checkpoint.schema.json) ---------------------------


@pytest.mark.parametrize(
    "make",
    [
        lambda: tiny_model(cls=Autoencoder),
        lambda: tiny_model(cls=SparseAutoencoder),
        lambda: tiny_model(cls=ContractiveAutoencoder),
        lambda: VariationalAutoencoder(image_shape=IMAGE, hidden=8, latent_dim=3, likelihood="gaussian", rng=0),
    ],
    ids=["plain", "sparse", "contractive", "vae"],
)
def test_every_kind_of_model_writes_the_metadata_the_schema_describes(tmp_path, make):
    jsonschema = pytest.importorskip("jsonschema")
    images = np.random.default_rng(7).random((32,) + IMAGE, dtype=np.float32)
    path = tmp_path / "model.npz"
    trainer = Trainer(make(), TrainingConfig(epochs=2, batch_size=16), path, progress=False, fingerprint={"a": [1]})
    trainer.fit(images, images[:8])
    meta = file_schemas.check_checkpoint(path)
    assert list(meta) == ["format", "epoch", "history", "config", "model", "rng", "data", "fingerprint"]
    unsaved = tmp_path / "before_fit.npz"
    Trainer(make(), CONFIG, progress=False).save_checkpoint(unsaved)
    assert file_schemas.check_checkpoint(unsaved)["data"] is None
    with pytest.raises(jsonschema.ValidationError):
        file_schemas.validator("checkpoint").validate({**meta, "model": {**meta["model"], "extra": 1}})


def test_a_format_2_checkpoint_is_rewritten_as_the_schema_describes(tmp_path, good):
    arrays, meta = good
    path = tmp_path / "old.npz"
    np.savez(path, **with_meta(arrays, {**{k: v for k, v in meta.items() if k != "model"}, "format": 2}))
    images = np.random.default_rng(7).random((32,) + IMAGE, dtype=np.float32)
    trainer = Trainer(tiny_model(seed=5), TrainingConfig(epochs=2, batch_size=16), path, progress=False)
    trainer.fit(images, resume=True)
    assert file_schemas.check_checkpoint(path)["format"] == 3


def _without(document: dict, *path: str) -> dict:
    document = json.loads(json.dumps(document))
    parent = document
    for key in path[:-1]:
        parent = parent[key] if isinstance(parent, dict) else parent[int(key)]
    del parent[path[-1]]
    return document


def _with(document: dict, value, *path: str) -> dict:
    document = json.loads(json.dumps(document))
    parent = document
    for key in path[:-1]:
        parent = parent[key] if isinstance(parent, dict) else parent[int(key)]
    parent[path[-1] if isinstance(parent, dict) else int(path[-1])] = value
    return document


SCHEMA_DAMAGES = {
    "no format": lambda m: _without(m, "format"),
    "format 2 (no longer written)": lambda m: _with(m, 2, "format"),
    "no history": lambda m: _without(m, "history"),
    "no rng": lambda m: _without(m, "rng"),
    "no fingerprint": lambda m: _without(m, "fingerprint"),
    "epoch a string": lambda m: _with(m, "1", "epoch"),
    "epoch negative": lambda m: _with(m, -1, "epoch"),
    "an unknown key": lambda m: _with(m, 1, "comment"),
    "config without seed": lambda m: _without(m, "config", "seed"),
    "batch_size a string": lambda m: _with(m, "16", "config", "batch_size"),
    "learning rate zero": lambda m: _with(m, 0, "config", "learning_rate"),
    "model without kind": lambda m: _without(m, "model", "kind"),
    "sparse model without rho": lambda m: _without(m, "model", "rho"),
    "sparse model with a string weight": lambda m: _with(m, "1e-3", "model", "sparsity_weight"),
    "generator state without inc": lambda m: _without(m, "rng", "state", "inc"),
    "another bit generator": lambda m: _with(m, "MT19937", "rng", "bit_generator"),
    "data without x_test": lambda m: _without(m, "data", "x_test"),
    "data digest not a sha256": lambda m: _with(m, "abc", "data", "x_train", "sha256"),
    "history record without epoch": lambda m: _without(m, "history", "0", "epoch"),
    "loss a string": lambda m: _with(m, "0.1", "history", "0", "train_loss"),
    "unknown record key": lambda m: _with(m, 1.0, "history", "0", "loss"),
    "flow of an unknown statistic": lambda m: _with(
        m, {"grad_nrm": 1.0}, "history", "0", "gradient_flow", "parameters", "encoder.conv2d_1.W"
    ),
    "flow without steps": lambda m: _without(m, "history", "0", "gradient_flow", "steps"),
    "fingerprint a string": lambda m: _with(m, "sparse", "fingerprint"),
}


@pytest.mark.parametrize("name", list(SCHEMA_DAMAGES))
def test_the_schema_refuses_damaged_metadata(good, name):
    jsonschema = pytest.importorskip("jsonschema")
    _, meta = good
    check = file_schemas.validator("checkpoint")
    check.validate(meta)
    with pytest.raises(jsonschema.ValidationError):
        check.validate(SCHEMA_DAMAGES[name](meta))
