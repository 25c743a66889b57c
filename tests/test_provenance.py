"""Fingerprints of models and results, and the check that a run may write into a folder."""

import json
from dataclasses import fields

import numpy as np
import pytest

from experiments import provenance, run_folder
from experiments.frey import LIKELIHOODS
from experiments.mnist import MODEL_KINDS, build_model
from experiments.presets import PRESETS, Preset, resolve_preset, setting, shaping

SMOKE = PRESETS["smoke"]


def identity(seed=0, source="MNIST"):
    x = np.random.default_rng(seed).random((4, 1, 28, 28), dtype=np.float32)
    return provenance.data_identity(source, source != "MNIST", x_train=x, x_test=x[:2])


KINDS = MODEL_KINDS + tuple(f"vae_{likelihood}" for likelihood in LIKELIHOODS)


def test_every_setting_declares_the_models_it_shapes_and_shapes_some():
    declared = {field.name: field.metadata.get("shapes") for field in fields(Preset)[1:]}
    assert all(declared.values()), [name for name, shapes in declared.items() if not shapes]
    assert {name for kind in KINDS for name in shaping(kind)} == set(declared)
    # the part's settings, then the kind's own: the order the fingerprints of existing results were made with
    assert shaping("plain") + ("rho", "sparsity_weight") == shaping("sparse")
    assert shaping("vae_bernoulli") == shaping("vae_gaussian") and shaping("vae_bernoulli")[0] == "seed"
    assert set(shaping("plain")) & set(shaping("vae_gaussian")) == {"seed"}


def test_a_setting_names_known_models_and_a_kind_must_be_known():
    with pytest.raises(ValueError, match=r"Expected shapes to name parts .* Received: shapes=\('sparce',\)"):
        setting(0.1, shapes="sparce")
    with pytest.raises(ValueError, match="Unknown model kind 'vae'; expected one of"):
        shaping("vae")


@pytest.mark.parametrize(
    "kind, setting, shapes",
    [
        ("sparse", "rho=0.1", True),
        ("sparse", "contractive_weight=1", False),
        ("plain", "epochs=3", True),
        ("contractive_remedy", "remedy_probes=2", True),
        ("plain", "vae_epochs=3", False),
        ("vae_bernoulli", "vae_epochs=3", True),
        ("vae_gaussian", "epochs=3", False),
        ("plain", "tsne_points=50", True),
        ("vae_gaussian", "seed=1", True),
    ],
)
def test_a_fingerprint_changes_with_exactly_the_settings_that_shape_the_model(kind, setting, shapes):
    def made(preset):
        from experiments.frey import build_model as vae

        model = vae(preset, likelihood=kind[4:]) if kind.startswith("vae_") else build_model(kind, preset)
        return provenance.fingerprint(kind, model, preset, identity())

    old, new = made(SMOKE), made(resolve_preset("smoke", [setting]))
    assert (old["digest"] != new["digest"]) == shapes
    name, value = setting.split("=")
    assert provenance.compare(old, new) == (
        [f"settings.{name}: {old['settings'][name]} -> {new['settings'][name]}"] if shapes else []
    )


def test_a_fingerprint_names_data_kind_and_architecture():
    sparse = provenance.fingerprint("sparse", build_model("sparse", SMOKE), SMOKE, identity())
    contractive = provenance.fingerprint("contractive", build_model("contractive", SMOKE), SMOKE, identity())
    assert sparse["architecture"]["parameters"]["encoder.conv2d_1.W"] == [[64, 1, 3, 3], "float32"]
    assert "Sigmoid" in sparse["architecture"]["networks"]["encoder"]
    found = provenance.compare(sparse, contractive)
    assert (
        "kind: sparse -> contractive" in found
        and "architecture.class: SparseAutoencoder -> ContractiveAutoencoder" in found
    )
    other = provenance.fingerprint("sparse", build_model("sparse", SMOKE), SMOKE, identity(seed=1))
    assert [d.split(":")[0] for d in provenance.compare(sparse, other)] == ["data.x_train.sha256", "data.x_test.sha256"]
    assert provenance.compare(None, sparse) == ["no fingerprint recorded (made by an older version)"]
    assert json.loads(json.dumps(sparse)) == sparse
    assert provenance.describe(identity()).startswith("MNIST: x_train 4 (sha256 ")


# -- the folder check ------------------------------------------------------------------------------


def expected(source="MNIST"):
    made = provenance.fingerprint("plain", build_model("plain", SMOKE), SMOKE, identity(source=source))
    return [run_folder.Expected("MNIST plain", ("mnist", "plain"), made, "checkpoints/plain.npz")]


def folder_with_result(tmp_path, source="MNIST"):
    settings = json.loads(json.dumps({f.name: getattr(SMOKE, f.name) for f in fields(Preset)}))
    run_folder.claim(tmp_path, {"preset": "smoke", "settings": settings})
    [item] = expected(source)
    run_folder.store(tmp_path, item.entry, {"test_mse": 0.1, "provenance": item.provenance}, {"mnist": 1.0})
    return settings


def test_a_folder_of_the_same_data_and_settings_may_be_written(tmp_path):
    settings = folder_with_result(tmp_path)
    assert run_folder.conflicts(tmp_path, settings, expected()) == []
    assert run_folder.conflicts(tmp_path / "new", settings, expected()) == []
    values = run_folder.read_metrics(tmp_path)
    assert values["run"]["stand_in"] is False and values["run"]["data_source"] == "MNIST"


def test_other_settings_or_data_are_conflicts(tmp_path):
    settings = folder_with_result(tmp_path)
    assert run_folder.conflicts(tmp_path, {**settings, "epochs": 5}, expected()) == ["settings: epochs: 1 -> 5"]
    [problem] = run_folder.conflicts(tmp_path, settings, expected(source="offline stand-in"))
    assert problem.startswith("MNIST plain: data.source: MNIST -> offline stand-in; data.stand_in: false -> true")


def test_folders_without_provenance_are_conflicts(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"run": {"settings": {}}, "mnist": {}}))
    assert run_folder.conflicts(tmp_path, {}, []) == ["results of an older version (metrics.json of another layout)"]
    (tmp_path / "metrics.json").write_text(json.dumps({"format": 2, "run": {"settings": {}}, "frey": {}}))
    assert run_folder.conflicts(tmp_path, {}, []) == ["results of an older version (metrics.json of another layout)"]
    (tmp_path / "metrics.json").unlink()
    (tmp_path / "notes.txt").write_text("mine")
    assert run_folder.conflicts(tmp_path, {}, []) == ["files ['notes.txt'] but no metrics.json: not a results folder"]


def test_unreadable_folders_and_metrics_name_the_path(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(run_folder.FolderError, match=f"^{tmp_path / 'file'}: is a file"):
        run_folder.conflicts(tmp_path / "file", {}, [])
    (tmp_path / "metrics.json").write_text("[1, 2")
    with pytest.raises(run_folder.FolderError, match=f"^{tmp_path / 'metrics.json'}: cannot be read"):
        run_folder.read_metrics(tmp_path)


def test_move_aside_renames_and_never_deletes(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "metrics.json").write_text("{}")
    first = run_folder.move_aside(folder)
    folder.mkdir()
    second = run_folder.move_aside(folder)
    assert first != second and first.name.startswith("out.moved-") and second.name.startswith("out.moved-")
    assert (first / "metrics.json").read_text() == "{}" and not folder.exists()
