"""Settings from the command line: parsing, validation, overrides and the folder each setting gets."""

from dataclasses import fields
from pathlib import Path

import pytest

from experiments.presets import PRESETS, Preset, default_folder, overrides, resolve_preset, settable


def test_overrides_are_parsed_by_the_fields_type():
    preset = resolve_preset(
        "quick",
        [
            "epochs=3",
            "sparsity_weight=1e-2",
            "n_train=none",
            "alphas=0,0.5,1",
            "remedy_mode=exact",
            "traversal_range=-3,3",
        ],
    )
    assert (preset.epochs, preset.sparsity_weight, preset.n_train) == (3, 0.01, None)
    assert preset.alphas == (0.0, 0.5, 1.0) and preset.traversal_range == (-3.0, 3.0)
    assert preset.remedy_mode == "exact" and preset.name == "quick"
    assert overrides(preset) == {
        "n_train": None,
        "epochs": 3,
        "sparsity_weight": 0.01,
        "remedy_mode": "exact",
        "alphas": (0.0, 0.5, 1.0),
        "traversal_range": (-3.0, 3.0),
    }


def test_every_field_but_the_name_can_be_set():
    assert settable() == [field.name for field in fields(Preset) if field.name != "name"]
    base = PRESETS["smoke"]
    for name in settable():  # its own value, written as text, parses back to it
        value = getattr(base, name)
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        assert getattr(resolve_preset("smoke", [f"{name}={text}"]), name) == value, name


def test_a_value_equal_to_the_presets_is_no_override():
    assert resolve_preset("quick", ["epochs=2", "learning_rate=0.001"]) == PRESETS["quick"]
    assert default_folder(resolve_preset("quick", {"learning_rate": 1e-3})) == Path("runs/quick")


@pytest.mark.parametrize(
    "given, message",
    [
        (["bogus=1"], r"Unknown setting 'bogus'; valid settings are: seed, n_train, n_test, epochs"),
        (["name=x"], "choose it with --preset"),
        (["epochs"], "expected key=value"),
        (["epochs=2.5"], "--set epochs=2.5: expected an integer"),
        (["learning_rate=fast"], "expected a number"),
        (["epochs=0"], "epochs to be a positive integer"),
        (["n_train=-5"], "n_train to be a positive integer or None"),
        (["seed=-1"], "seed to be a non-negative integer"),
        (["learning_rate=0"], "learning_rate to be positive"),
        (["learning_rate=nan"], "learning_rate to be a finite number"),
        (["rho=0"], r"rho to be a probability in \(0, 1\)"),
        (["test_fraction=1"], "test_fraction to be a probability"),
        (["sparsity_weight=-1"], "sparsity_weight to be >= 0"),
        (["alphas=0,1.5"], r"alphas to be a non-empty list of values in \[0, 1\]"),
        (["traversal_range=2,-2"], "low < high"),
        (["traversal_dim=20"], "0 <= traversal_dim < vae_latent_dim"),
        (["remedy_mode=closed_form"], "remedy_mode to be one of"),
        (["tsne_iterations=100"], ">= 250"),
    ],
)
def test_a_bad_setting_is_a_clear_error(given, message):
    with pytest.raises(ValueError, match=message):
        resolve_preset("quick", given)


def test_preset_validates_types_when_built_in_code():
    with pytest.raises(TypeError, match="epochs to be an integer"):
        Preset(name="x", epochs=True)
    with pytest.raises(TypeError, match="alphas to be a sequence"):
        Preset(name="x", alphas=0.5)
    assert Preset(name="x", learning_rate=1).learning_rate == 1.0  # stored canonically
    assert Preset(name="x", alphas=[0, 1]).alphas == (0.0, 1.0)


def test_each_setting_and_kind_of_data_gets_its_own_folder():
    quick = PRESETS["quick"]
    changed = resolve_preset("quick", ["epochs=3", "sparsity_weight=1e-2"])
    assert default_folder(quick) == Path("runs/quick")
    assert default_folder(quick, {"mnist": True, "frey": True}) == Path("runs/quick-stand-in")
    assert default_folder(quick, {"frey": True}) == Path("runs/quick-stand-in")
    assert default_folder(quick, {"mnist": False, "frey": True}) == Path("runs/quick-frey-stand-in")
    assert default_folder(changed) == Path("runs/quick-epochs=3,sparsity_weight=0.01")
    assert default_folder(changed, {"mnist": True}) == Path("runs/quick-epochs=3,sparsity_weight=0.01-stand-in")
    long = resolve_preset("quick", {"alphas": [i / 20 for i in range(21)], "epochs": 5})
    assert default_folder(long).name.startswith("quick-set-") and len(default_folder(long).name) == 20
    assert default_folder(long) != default_folder(resolve_preset("quick", {"alphas": [0.0, 1.0], "epochs": 5}))
