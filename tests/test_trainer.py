"""The trainer: exact resumption, divergence handling, checkpoints without pickle, history contents."""

import numpy as np
import pytest

from autoencoders.architectures import conv_decoder, conv_encoder
from autoencoders.models import Autoencoder, SparseAutoencoder
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
    Trainer(interrupted, TrainingConfig(epochs=1, batch_size=16, seed=5), tmp_path / "b.npz",
            progress=False).fit(images, images[:8])
    resumed = tiny_model(seed=99)  # different initial weights: everything must come from the checkpoint
    trainer = Trainer(resumed, config, tmp_path / "b.npz", progress=False)
    history = trainer.fit(images, images[:8], resume=True)

    assert [record["epoch"] for record in history] == [1, 2, 3]
    for (name, a, _), (_, b, _) in zip(straight.parameters(), resumed.parameters()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_history_records_every_term_and_latent_health(tmp_path, images):
    history = Trainer(tiny_model(), TrainingConfig(epochs=2, batch_size=16), tmp_path / "c.npz",
                      progress=False).fit(images, images[:8])
    record = history[-1]
    for key in ("train_loss", "train_mse", "train_kl_sparsity", "test_loss", "test_mse",
                "test_kl_sparsity", "latent_mean", "latent_saturated", "seconds"):
        assert key in record and np.isfinite(record[key]), key
    assert record["train_loss"] == pytest.approx(record["train_mse"] + 1e-3 * record["train_kl_sparsity"], rel=1e-6)


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, images):
    path = tmp_path / "d.npz"
    model = tiny_model()
    Trainer(model, TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images)
    good = path.read_bytes()
    params_before = {name: param.copy() for name, param, _ in model.parameters()}
    poisoned = images.copy()
    poisoned[3, 0, 5, 5] = np.nan
    trainer = Trainer(model, TrainingConfig(epochs=2, batch_size=16), path, progress=False)
    with pytest.raises(TrainingDiverged, match=r"epoch 2, batch \d+.*checkpoint of epoch 1"):
        trainer.fit(poisoned, resume=True)
    assert path.read_bytes() == good
    # the batch with NaN was never applied; earlier batches of epoch 2 were
    assert all(np.isfinite(param).all() for _, param, _ in model.parameters())
    assert set(params_before) == {name for name, _, _ in model.parameters()}


def test_checkpoint_loads_without_pickle_and_rejects_other_models(tmp_path, images):
    path = tmp_path / "e.npz"
    Trainer(tiny_model(), TrainingConfig(epochs=1, batch_size=16), path, progress=False).fit(images)
    with np.load(path, allow_pickle=False) as data:
        assert "meta" in data.files and any(key.startswith("optim/m/") for key in data.files)
    other = Autoencoder(conv_encoder(latent_dim=5, image_shape=IMAGE, filters=(3, 4), rng=0),
                        conv_decoder(latent_dim=5, image_shape=IMAGE, filters=(4, 3), rng=0))
    trainer = Trainer(other, TrainingConfig(epochs=1), path, progress=False)
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


def test_config_validation():
    with pytest.raises(ValueError, match="batch_size=0"):
        TrainingConfig(batch_size=0)
