"""The trainer: exact resumption, divergence handling, checkpoints without pickle, history contents."""

import numpy as np
import pytest

try:
    import fcntl
except ImportError:
    fcntl = None

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.checkpoints import CheckpointError, CheckpointMismatch, read_checkpoint
from autoencoders.models import Autoencoder, ContractiveAutoencoder, SparseAutoencoder
from autoencoders.trainer import Trainer, TrainingConfig, TrainingDiverged, latent_health

IMAGE = (1, 12, 12)


def tiny_model(seed=0, cls=SparseAutoencoder):
    rng = np.random.default_rng(seed)
    encoder = conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng)
    decoder = conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng)
    return cls(encoder, decoder)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(7).random((40,) + IMAGE, dtype=np.float32)


def test_resumed_run_equals_uninterrupted_run_bit_for_bit(tmp_path, images):
    config = TrainingConfig(epochs=3, batch_size=16, seed=5)
    straight = tiny_model()
    Trainer(straight, config, tmp_path / "a.npz", progress=False).fit(images, images[:8])

    interrupted = tiny_model()
    Trainer(interrupted, TrainingConfig(epochs=1, batch_size=16, seed=5), tmp_path / "b.npz", progress=False).fit(
        images, images[:8]
    )
    resumed = tiny_model(seed=99)  # different initial weights: everything must come from the checkpoint
    trainer = Trainer(resumed, config, tmp_path / "b.npz", progress=False)
    history = trainer.fit(images, images[:8], resume=True)

    assert [record["epoch"] for record in history] == [1, 2, 3]
    for (name, a, _), (_, b, _) in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_history_records_every_term_and_latent_health(tmp_path, images):
    history = Trainer(tiny_model(), TrainingConfig(epochs=2, batch_size=16), tmp_path / "c.npz", progress=False).fit(
        images, images[:8]
    )
    record = history[-1]
    for key in (
        "train_loss",
        "train_mse",
        "train_kl_sparsity",
        "test_loss",
        "test_mse",
        "test_kl_sparsity",
        "latent_mean",
        "latent_saturated",
        "seconds",
    ):
        assert key in record and np.isfinite(record[key]), key
    assert record["train_loss"] == pytest.approx(record["train_mse"] + 1e-3 * record["train_kl_sparsity"], rel=1e-6)


class FailsAt(SparseAutoencoder):
    """A model whose training call number ``at`` (counting from 1) goes wrong in the way ``how`` says."""

    def __init__(self, encoder, decoder, at: int, how: str) -> None:
        super().__init__(encoder, decoder)
        self.calls, self.at, self.how = 0, at, how

    def kind(self) -> str:  # a SparseAutoencoder that fails on purpose: its checkpoints are a SparseAutoencoder's
        return "SparseAutoencoder"

    def loss_and_grads(self, x, rng):
        self.calls += 1
        terms = super().loss_and_grads(x, rng)
        if self.calls == self.at and self.how == "loss":
            terms["loss"] = float("nan")
        if self.calls == self.at and self.how == "gradient":  # a finite loss whose step turns weights to NaN
            self.networks["decoder"].grads[next(iter(self.networks["decoder"].grads))][...] = np.inf
        return terms

    def evaluate_and_encode(self, x, rng):
        terms, codes = super().evaluate_and_encode(x, rng)
        if self.how == "evaluation" and self.calls >= self.at:
            terms = {**terms, "loss": float("inf")}
        return terms, codes


def failing_model(at, how):
    rng = np.random.default_rng(0)
    return FailsAt(
        conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
        conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng),
        at,
        how,
    )


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, images):
    path = tmp_path / "d.npz"
    model = failing_model(at=5, how="loss")  # 3 batches per epoch: the second batch of epoch 2
    trainer = Trainer(model, TrainingConfig(epochs=3, batch_size=16), path, progress=False)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch 2.*checkpoint of epoch 1"):
        trainer.fit(images)
    assert (
        Trainer(tiny_model(), TrainingConfig(epochs=3, batch_size=16), path, progress=False).fit(images, resume=True)[
            0
        ]["epoch"]
        == 1
    )
    # the batch with NaN was never applied; earlier batches of epoch 2 were
    assert all(np.isfinite(param).all() for _, param, _ in model.parameters())


@pytest.mark.parametrize(
    "how, message",
    [
        ("gradient", r"Non-finite values after the updates of epoch 2 in param/decoder.*checkpoint of epoch 1 is kept"),
        ("evaluation", r"Non-finite evaluation of x_test after epoch 2.*checkpoint of epoch 1 is kept"),
    ],
)
def test_non_finite_state_or_evaluation_is_never_checkpointed(tmp_path, images, how, message):
    path = tmp_path / "f.npz"
    trainer = Trainer(failing_model(at=2, how=how), TrainingConfig(epochs=4, batch_size=64), path, progress=False)
    with pytest.raises(TrainingDiverged, match=message):
        trainer.fit(images, images[:8])  # one batch per epoch: call 2 is epoch 2
    meta, arrays = read_checkpoint(path)
    assert meta["epoch"] == 1 and len(trainer.history) == 1 and trainer.epoch == 1
    assert all(np.isfinite(value).all() for value in arrays.values())


def test_huge_learning_rate_writes_no_checkpoint(tmp_path, images):
    path = tmp_path / "g.npz"
    trainer = Trainer(tiny_model(), TrainingConfig(epochs=3, batch_size=64, learning_rate=1e39), path, progress=False)
    with np.errstate(all="ignore"), pytest.raises(TrainingDiverged, match="epoch 1 in .*no checkpoint was written"):
        trainer.fit(images)
    assert not path.exists()


def test_checkpoint_loads_without_pickle_and_rejects_other_models(tmp_path, images):
    path = tmp_path / "e.npz"
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images)
    with np.load(path, allow_pickle=False) as data:
        assert "meta" in data.files and any(key.startswith("optim/m/") for key in data.files)
    other = SparseAutoencoder(
        conv_encoder(latent_dim=5, image_shape=IMAGE, filters=(3, 4), rng=0),
        conv_decoder(latent_dim=5, image_shape=IMAGE, filters=(4, 3), rng=0),
    )
    trainer = Trainer(other, TrainingConfig(epochs=1, batch_size=16), path, progress=False)
    before = {name: param.copy() for name, param, _ in other.parameters()}
    with pytest.raises(ValueError, match="do not match"):
        trainer.load_checkpoint()
    for name, param, _ in other.parameters():
        np.testing.assert_array_equal(param, before[name])
    assert trainer.epoch == 0


def test_same_seed_same_result(images):
    runs = []
    for _ in range(2):
        model = tiny_model()
        Trainer(model, TrainingConfig(epochs=1, batch_size=16, seed=3), progress=False).fit(images)
        runs.append(model.params)
    for key in runs[0]:
        np.testing.assert_array_equal(runs[0][key], runs[1][key])


def test_training_keeps_float32(images):
    model = tiny_model()
    Trainer(model, TrainingConfig(epochs=1, batch_size=16), progress=False).fit(images)
    assert all(param.dtype == np.float32 for _, param, _ in model.parameters())


def test_latent_health_counts_saturated_units():
    codes = np.array([[0.0, 0.5], [1.0, 0.9995]], dtype=np.float32)
    assert latent_health(codes) == {"latent_mean": pytest.approx(0.62487, abs=1e-4), "latent_saturated": 0.75}
    assert "latent_saturated" not in latent_health(np.array([[-1.0, 2.0]]))


@pytest.mark.parametrize(
    "field, value, error, allowed",
    [
        ("batch_size", 0, ValueError, "a positive integer"),
        ("epochs", True, TypeError, "a positive integer"),
        ("epochs", 2.0, TypeError, "a positive integer"),
        ("eval_batch_size", "500", TypeError, "a positive integer"),
        ("eval_batch_size", -3, ValueError, "a positive integer"),
        ("seed", -1, ValueError, "a non-negative integer"),
        ("seed", False, TypeError, "a non-negative integer"),
        ("seed", None, TypeError, "a non-negative integer"),
        ("learning_rate", "0.1", TypeError, "a finite positive number"),
        ("learning_rate", True, TypeError, "a finite positive number"),
        ("learning_rate", None, TypeError, "a finite positive number"),
        ("learning_rate", float("inf"), ValueError, "a finite positive number"),
        ("learning_rate", float("nan"), ValueError, "a finite positive number"),
        ("learning_rate", 10**400, ValueError, "a finite positive number"),
        ("learning_rate", 0.0, ValueError, "a finite positive number"),
        ("learning_rate", -1e-3, ValueError, "a finite positive number"),
    ],
)
def test_config_validation_names_the_field_the_value_and_what_is_allowed(field, value, error, allowed):
    with pytest.raises(error) as caught:
        TrainingConfig(**{field: value})
    message = str(caught.value)
    assert message == f"Expected {field} to be {allowed}. Received: {field}={value!r}"


def test_config_accepts_numpy_numbers_as_plain_python_numbers():
    config = TrainingConfig(
        epochs=np.int64(3), batch_size=np.int32(8), learning_rate=np.float32(0.5), seed=np.uint8(2), eval_batch_size=7
    )
    assert config == TrainingConfig(epochs=3, batch_size=8, learning_rate=0.5, seed=2, eval_batch_size=7)
    assert [type(value) for value in vars(config).values()] == [int, int, float, int, int]
    assert TrainingConfig(learning_rate=1).learning_rate == 1.0


def test_test_codes_are_the_final_models_codes_and_none_when_fit_trains_nothing(tmp_path, images):
    config = TrainingConfig(epochs=2, batch_size=16, eval_batch_size=3)  # codes from several batches
    trainer = Trainer(tiny_model(), config, tmp_path / "t.npz", progress=False)
    trainer.fit(images, images[:8])
    np.testing.assert_array_equal(trainer.test_codes, trainer.encode(images[:8]))
    assert trainer.history[-1]["latent_mean"] == latent_health(trainer.test_codes)["latent_mean"]
    trainer.fit(images, images[:8])  # all epochs done: the codes of the earlier call are not kept
    assert trainer.test_codes is None
    reused = Trainer(tiny_model(seed=3), config, tmp_path / "t.npz", progress=False)
    reused.fit(images, images[:8], resume=True)  # the checkpoint is complete: nothing is trained or encoded
    assert reused.epoch == 2 and reused.test_codes is None


# -- resuming only what was made from the same data and settings -----------------------------------


def trained_checkpoint(tmp_path, images, **config):
    path = tmp_path / "r.npz"
    settings = {"epochs": 2, "batch_size": 16, **config}
    Trainer(tiny_model(), TrainingConfig(**settings), path, progress=False, fingerprint={"kind": "sparse"}).fit(
        images, images[:8]
    )
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda x: dict(x_train=x[::-1].copy()), r"data\.x_train\.sha256: \w+… -> \w+…"),
        (lambda x: dict(x_test=x[8:16]), r"data\.x_test\.sha256"),
        (
            lambda x: dict(config=TrainingConfig(epochs=2, batch_size=16, learning_rate=1e-2)),
            r"config\.learning_rate: 0\.001 -> 0\.01",
        ),
        (lambda x: dict(config=TrainingConfig(epochs=1, batch_size=16)), r"config\.epochs: trained 2 -> 1"),
        (lambda x: dict(fingerprint={"kind": "plain"}), r"fingerprint\.kind: sparse -> plain"),
    ],
)
def test_resume_refuses_a_checkpoint_made_from_other_data_or_settings(tmp_path, images, change, message):
    path = trained_checkpoint(tmp_path, images)
    setup = {
        "x_train": images,
        "x_test": images[:8],
        "config": TrainingConfig(epochs=2, batch_size=16),
        "fingerprint": {"kind": "sparse"},
        **change(images),
    }
    model = tiny_model(seed=3)
    before = {name: param.copy() for name, param, _ in model.parameters()}
    trainer = Trainer(model, setup["config"], path, progress=False, fingerprint=setup["fingerprint"])
    stamp = path.stat().st_mtime_ns
    with pytest.raises(CheckpointMismatch, match=f"^{path}: made from another model, data or settings.*{message}"):
        trainer.fit(setup["x_train"], setup["x_test"], resume=True)
    assert trainer.epoch == 0 and trainer.history == [] and path.stat().st_mtime_ns == stamp
    for name, param, _ in model.parameters():
        np.testing.assert_array_equal(param, before[name])


def test_resume_with_the_same_data_and_settings_continues(tmp_path, images):
    path = trained_checkpoint(tmp_path, images, epochs=1)
    trainer = Trainer(
        tiny_model(seed=3),
        TrainingConfig(epochs=2, batch_size=16),
        path,
        progress=False,
        fingerprint={"kind": "sparse"},
    )
    assert [record["epoch"] for record in trainer.fit(images, images[:8], resume=True)] == [1, 2]


# -- the data entering fit ------------------------------------------------------------------------


class Unbounded(SparseAutoencoder):
    input_range = None


@pytest.mark.parametrize(
    "x_train, x_test, error, message",
    [
        ((np.ones((4,) + IMAGE) * 255).astype(np.uint8), None, ValueError, r"dtype uint8.*divide uint8 pixels by 255"),
        (
            np.ones((4,) + IMAGE, np.float32) * 255,
            None,
            ValueError,
            r"expects x_train in \[0\.0, 1\.0\]\. Received values in \[255, 255\].*divide uint8 pixels by 255",
        ),
        (np.ones((4,) + IMAGE, np.float32) * -1, None, ValueError, r"Received values in \[-1, -1\]"),
        (
            np.zeros((0,) + IMAGE, np.float32),
            None,
            ValueError,
            r"x_train to hold at least one sample.*\(0, 1, 12, 12\)",
        ),
        (np.ones((4,) + IMAGE, np.float32), np.zeros((0,) + IMAGE, np.float32), ValueError, "x_test to hold at least"),
        (
            np.ones((4,) + IMAGE, np.float32),
            np.full((2,) + IMAGE, np.nan, np.float32),
            ValueError,
            r"x_test holds 288 NaN or infinite",
        ),
        (np.ones((4,) + IMAGE, np.float32), np.ones((2, 1, 12, 10), np.float32), ValueError, r"differ in shape"),
        ([[0.5]], None, TypeError, "numpy array"),
    ],
)
def test_fit_rejects_data_it_cannot_train_on(x_train, x_test, error, message):
    trainer = Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), progress=False)
    with pytest.raises(error, match=message):
        trainer.fit(x_train, x_test)
    assert trainer.epoch == 0


def test_a_model_without_input_range_is_not_range_checked():
    rng = np.random.default_rng(0)
    model = Unbounded(
        conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
        conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng),
    )
    x = rng.uniform(-2.0, 3.0, (8,) + IMAGE).astype(np.float32)
    assert len(Trainer(model, TrainingConfig(epochs=1, batch_size=8), progress=False).fit(x)) == 1


# -- the model kind a checkpoint records ------------------------------------------------------------


@pytest.mark.parametrize("cls", [ContractiveAutoencoder, Autoencoder])
def test_a_checkpoint_of_another_model_kind_is_refused(tmp_path, images, cls):
    path = trained_checkpoint(tmp_path, images, epochs=1)
    model = tiny_model(seed=3, cls=cls)  # the same networks, so every array fits: only the kind differs
    before = {name: param.copy() for name, param, _ in model.parameters()}
    trainer = Trainer(
        model, TrainingConfig(epochs=2, batch_size=16), path, progress=False, fingerprint={"kind": "sparse"}
    )
    message = f"^{path}: .*model.kind: SparseAutoencoder -> {cls.__name__}"
    with pytest.raises(CheckpointMismatch, match=message):
        trainer.fit(images, images[:8], resume=True)
    with pytest.raises(CheckpointMismatch, match=message):
        trainer.load_checkpoint()
    assert trainer.epoch == 0 and trainer.history == []
    for name, param, _ in model.parameters():
        np.testing.assert_array_equal(param, before[name])


def test_a_checkpoint_of_the_same_kind_with_other_model_settings_is_refused(tmp_path, images):
    path = trained_checkpoint(tmp_path, images, epochs=1)
    rng = np.random.default_rng(3)
    model = SparseAutoencoder(
        conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
        conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng),
        sparsity_weight=1e-2,
    )
    trainer = Trainer(
        model, TrainingConfig(epochs=2, batch_size=16), path, progress=False, fingerprint={"kind": "sparse"}
    )
    with pytest.raises(CheckpointMismatch, match=r"model\.sparsity_weight: 0\.001 -> 0\.01"):
        trainer.fit(images, images[:8], resume=True)
    assert trainer.epoch == 0


# -- the checkpoint path, checked before training -------------------------------------------------


class Counting(SparseAutoencoder):
    """Counts its training calls, and notes which temporaries of ``watched`` exist at the first."""

    def __init__(self, encoder, decoder, watched=None) -> None:
        super().__init__(encoder, decoder)
        self.calls, self.watched, self.seen = 0, watched, None

    def kind(self) -> str:
        return "SparseAutoencoder"

    def loss_and_grads(self, x, rng):
        if self.calls == 0 and self.watched is not None:
            self.seen = sorted(p.name for p in self.watched.parent.glob(self.watched.name + ".*.tmp"))
        self.calls += 1
        return super().loss_and_grads(x, rng)


def counting_model(watched=None):
    rng = np.random.default_rng(0)
    return Counting(
        conv_encoder(latent_dim=6, image_shape=IMAGE, filters=(3, 4), rng=rng),
        conv_decoder(latent_dim=6, image_shape=IMAGE, filters=(4, 3), rng=rng),
        watched,
    )


@pytest.mark.parametrize(
    "where, message",
    [
        (lambda tmp: tmp, "is a folder, not a file"),
        (lambda tmp: tmp / "a-file" / "model.npz", r"its folder .*a-file cannot be written"),
    ],
)
def test_a_checkpoint_path_that_cannot_be_written_is_refused_before_training(tmp_path, images, where, message):
    (tmp_path / "a-file").write_text("not a folder")
    path = where(tmp_path)
    model = counting_model()
    trainer = Trainer(model, TrainingConfig(epochs=1, batch_size=16), path, progress=False)
    with pytest.raises(CheckpointError, match=f"^{path}: .*{message}"):
        trainer.fit(images)
    assert model.calls == 0 and trainer.epoch == 0


def test_stale_temporaries_of_the_checkpoint_are_removed_when_fit_starts(tmp_path, images):
    path = tmp_path / "s.npz"
    stale = tmp_path / "s.npz.x7_k2p9q.tmp"  # as a save killed while writing leaves it
    other = tmp_path / "other.npz.x7_k2p9q.tmp"
    for leftover in (stale, other):
        leftover.write_bytes(b"PK\x03\x04 half of a checkpoint")
    model = counting_model(watched=path)
    Trainer(model, TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images)
    assert model.seen == [] and not stale.exists() and other.exists()

    stale.write_bytes(b"PK\x03\x04 half of a checkpoint")  # a complete checkpoint: fit trains and saves nothing
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images, resume=True)
    assert not stale.exists()


@pytest.mark.skipif(fcntl is None, reason="advisory locks (fcntl) are POSIX")
def test_the_temporary_of_a_save_still_writing_survives_a_fit_starting(tmp_path, images):
    path = tmp_path / "w.npz"
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images)
    live = tmp_path / "w.npz.a1b2c3d4.tmp"
    with open(live, "wb") as handle:  # locked as a concurrent save locks the temporary it writes
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images, resume=True)
        assert live.exists()
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images, resume=True)
    assert not live.exists()
