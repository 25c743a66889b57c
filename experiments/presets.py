"""Settings of the main job. ``paper`` is the study's; ``quick`` runs the same pipeline on a subset.

A run's settings are a named preset with optional overrides (``--set key=value``):
:func:`resolve_preset` turns them into a validated :class:`Preset`, :func:`overrides` recovers what differs
from the named preset, and :func:`default_folder` gives the output folder, one per distinct setting and
kind of data, so that results made with other settings or data are never mixed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import typing
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

REMEDY_MODES = ("exact", "hutchinson")  # the remedy's linear latent has no closed-form penalty
MNIST_KINDS = ("plain", "sparse", "contractive", "contractive_remedy")  # the VAEs are "vae_<likelihood>"
PARTS = ("mnist", "vae")  # a setting that shapes a part shapes each of its models


def setting(default, shapes: str | tuple[str, ...]):
    """A field of :class:`Preset` and the models it shapes, in training or evaluation: a part (``"mnist"``,
    ``"vae"``: each of its models) or MNIST model kinds. A model's fingerprint (:mod:`experiments.provenance`)
    holds exactly the settings that shape it (:func:`shaping`)."""
    shapes = (shapes,) if isinstance(shapes, str) else tuple(shapes)
    unknown = [name for name in shapes if name not in PARTS + MNIST_KINDS]
    if not shapes or unknown:
        raise ValueError(f"Expected shapes to name parts {PARTS} or models {MNIST_KINDS}. Received: shapes={shapes!r}")
    return dataclasses.field(default=default, metadata={"shapes": shapes})


@dataclass(frozen=True)
class Preset:
    """Every number the experiments use, in one place (written into the report and metrics.json).

    The constructor validates every field and stores numbers canonically (floats as float, sequences as
    tuples), so that equal settings always compare, print and fingerprint equal. Each field declares the models
    it shapes (:func:`setting`), and a model's fingerprint holds those (:func:`shaping`).
    """

    name: str
    seed: int = setting(0, shapes=("mnist", "vae"))
    # MNIST models
    n_train: int | None = setting(None, shapes="mnist")  # None: all 60,000
    n_test: int | None = setting(None, shapes="mnist")  # None: all 10,000
    epochs: int = setting(10, shapes="mnist")
    batch_size: int = setting(128, shapes="mnist")
    learning_rate: float = setting(1e-3, shapes="mnist")
    latent_dim: int = setting(128, shapes="mnist")
    rho: float = setting(0.05, shapes="sparse")
    sparsity_weight: float = setting(1e-3, shapes="sparse")
    contractive_weight: float = setting(1e-4, shapes=("contractive", "contractive_remedy"))
    # the contractive remedy: linear latent, full-Jacobian penalty
    remedy_mode: str = setting("hutchinson", shapes="contractive_remedy")
    remedy_probes: int = setting(1, shapes="contractive_remedy")
    # evaluation of the MNIST models
    tsne_points: int | None = setting(None, shapes="mnist")  # None: the whole test set
    tsne_perplexity: float = setting(30.0, shapes="mnist")
    tsne_iterations: int = setting(300, shapes="mnist")
    n_pairs: int = setting(20, shapes="mnist")
    alphas: tuple[float, ...] = setting((0.0, 0.2, 0.4, 0.6, 0.8, 1.0), shapes="mnist")
    # Frey Face VAE
    vae_epochs: int = setting(200, shapes="vae")
    vae_batch_size: int = setting(128, shapes="vae")
    vae_learning_rate: float = setting(1e-3, shapes="vae")
    vae_latent_dim: int = setting(20, shapes="vae")
    vae_hidden: int = setting(256, shapes="vae")
    test_fraction: float = setting(0.1, shapes="vae")
    traversal_dim: int = setting(4, shapes="vae")
    traversal_range: tuple[float, float] = setting((-2.0, 2.0), shapes="vae")
    traversal_steps: int = setting(9, shapes="vae")
    n_faces: int = setting(15, shapes="vae")
    grid_steps: int = setting(9, shapes="vae")

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"Expected name to be a non-empty string. Received: name={self.name!r}")
        for field in fields(self)[1:]:
            value = _canonical(field.name, _hints()[field.name], getattr(self, field.name))
            object.__setattr__(self, field.name, value)
            for rule, holds in _RULES.get(field.name, ()):
                if not holds(value, self):
                    raise ValueError(f"Expected {field.name} {rule}. Received: {field.name}={value!r}")


def _positive(value, preset) -> bool:
    return value is None or value > 0


_RULES: dict[str, tuple] = {
    **{
        name: (("to be a positive integer", _positive),)
        for name in (
            "epochs",
            "batch_size",
            "latent_dim",
            "remedy_probes",
            "n_pairs",
            "vae_epochs",
            "vae_batch_size",
            "vae_latent_dim",
            "vae_hidden",
            "traversal_steps",
            "n_faces",
            "grid_steps",
        )
    },
    **{name: (("to be a positive integer or None (all)", _positive),) for name in ("n_train", "n_test")},
    "tsne_points": (("to be an integer >= 2 or None (the whole test set)", lambda v, p: v is None or v >= 2),),
    "seed": (("to be a non-negative integer", lambda v, p: v >= 0),),
    **{name: (("to be positive", _positive),) for name in ("learning_rate", "vae_learning_rate", "tsne_perplexity")},
    **{name: (("to be >= 0", lambda v, p: v >= 0),) for name in ("sparsity_weight", "contractive_weight")},
    **{name: (("to be a probability in (0, 1)", lambda v, p: 0 < v < 1),) for name in ("rho", "test_fraction")},
    "remedy_mode": ((f"to be one of {REMEDY_MODES}", lambda v, p: v in REMEDY_MODES),),
    "tsne_iterations": (("to be an integer >= 250 (scikit-learn's minimum)", lambda v, p: v >= 250),),
    "alphas": (("to be a non-empty list of values in [0, 1]", lambda v, p: v and all(0 <= a <= 1 for a in v)),),
    "traversal_range": (("to be two values low,high with low < high", lambda v, p: len(v) == 2 and v[0] < v[1]),),
    "traversal_dim": (
        ("to be a latent dimension, 0 <= traversal_dim < vae_latent_dim", lambda v, p: 0 <= v < p.vae_latent_dim),
    ),
}


def shaping(kind: str) -> tuple[str, ...]:
    """The names of the settings that shape the model ``kind`` (an MNIST model kind, or ``"vae_<likelihood>"``):
    those declared for its part, then those declared for the kind itself, each in the order of :class:`Preset`."""
    part = "vae" if kind.startswith("vae_") else "mnist"
    if part == "mnist" and kind not in MNIST_KINDS:
        raise ValueError(f"Unknown model kind {kind!r}; expected one of {MNIST_KINDS} or 'vae_<likelihood>'.")
    declared = [(each.name, each.metadata["shapes"]) for each in fields(Preset)[1:]]
    return tuple(name for name, shapes in declared if part in shapes) + tuple(
        name for name, shapes in declared if kind in shapes
    )


@functools.cache
def _hints() -> dict:
    return typing.get_type_hints(Preset)


def _canonical(name: str, hint, value):
    """``value`` checked against the field's type and stored canonically; raises TypeError otherwise."""
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else ()
    if type(None) in options:
        return None if value is None else _canonical(name, next(o for o in options if o is not type(None)), value)
    if typing.get_origin(hint) is tuple:
        if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
            raise TypeError(f"Expected {name} to be a sequence of numbers. Received: {name}={value!r}")
        return tuple(_canonical(name, typing.get_args(hint)[0], item) for item in value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"Expected {name} to be an integer. Received: {name}={value!r}")
        return int(value)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise TypeError(f"Expected {name} to be a finite number. Received: {name}={value!r}")
        return float(value)
    if not isinstance(value, hint):
        raise TypeError(f"Expected {name} to be a {hint.__name__}. Received: {name}={value!r}")
    return value


PRESETS = {
    "paper": Preset(name="paper"),
    "quick": Preset(name="quick", n_train=10_000, n_test=2_000, epochs=2, tsne_points=1_000, vae_epochs=50),
    # for tests: the whole pipeline in seconds
    "smoke": Preset(
        name="smoke",
        n_train=256,
        n_test=128,
        epochs=1,
        batch_size=64,
        tsne_points=100,
        tsne_iterations=250,
        n_pairs=4,
        vae_epochs=2,
        n_faces=6,
        traversal_steps=5,
        grid_steps=4,
    ),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.") from None


# -- settings from the command line --------------------------------------------------------------------


def settable() -> list[str]:
    """The fields ``--set`` accepts: every field of :class:`Preset` but ``name``."""
    return [field.name for field in fields(Preset)][1:]


def parse_value(name: str, text: str):
    """The value of one ``--set name=text`` as the field's type: ``none`` for an optional field, commas
    between the items of a tuple. Raises ValueError naming the field and the expected type."""
    hint = _hints()[name]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, type(int | None)) else ()
    if type(None) in options:
        if text.strip().lower() == "none":
            return None
        hint = next(o for o in options if o is not type(None))
    if typing.get_origin(hint) is tuple:
        return tuple(parse_value_as(name, typing.get_args(hint)[0], item) for item in text.split(","))
    return parse_value_as(name, hint, text)


def parse_value_as(name: str, hint, text: str):
    text = text.strip()
    try:
        if hint is int:
            return int(text)
        if hint is float:
            return float(text)
    except ValueError:
        kind = "an integer" if hint is int else "a number"
        raise ValueError(f"--set {name}={text}: expected {kind}.") from None
    return text


def resolve_preset(name: str, overrides: dict | list[str] | None = None) -> Preset:
    """The preset ``name`` with ``overrides`` applied and every field validated.

    ``overrides`` maps field names to values, or is a list of ``"field=value"`` strings (as ``--set``
    gives them; values are parsed by :func:`parse_value`). Raises ValueError for an unknown preset or
    field (listing the valid ones) and for a value of the wrong type or range.
    """
    base = get_preset(name)
    if isinstance(overrides, list):
        parsed = {}
        for item in overrides:
            key, equals, text = item.partition("=")
            if not equals:
                raise ValueError(f"--set {item}: expected key=value, e.g. --set epochs=3.")
            _check_key(key.strip())
            parsed[key.strip()] = parse_value(key.strip(), text)
        overrides = parsed
    for key in overrides or {}:
        _check_key(key)
    try:
        return replace(base, **(overrides or {}))
    except TypeError as error:
        raise ValueError(str(error)) from None


def _check_key(key: str) -> None:
    if key == "name":
        raise ValueError("--set name=...: the name is the preset's; choose it with --preset.")
    if key not in settable():
        raise ValueError(f"Unknown setting {key!r}; valid settings are: {', '.join(settable())}.")


def overrides(preset: Preset) -> dict:
    """The fields of ``preset`` that differ from the preset of its name (every field but the name when
    the name is not one of :data:`PRESETS`)."""
    base = PRESETS.get(preset.name, Preset(name=preset.name))
    return {key: value for key, value in asdict(preset).items() if value != getattr(base, key)}


def settings(preset: Preset) -> dict:
    """Every field of ``preset`` as JSON would store it."""
    return json.loads(json.dumps(asdict(preset)))


def slug(items) -> str:
    """Settings as a folder name's part: ``epochs=3,alphas=0.0_0.5_1.0``."""
    return ",".join(f"{key}={'_'.join(map(str, value)) if isinstance(value, tuple) else value}" for key, value in items)


def safe_name(text: str, limit: int = 60, hashed: str | None = None) -> str:
    """``text`` when it makes a short, portable folder name, else ``set-`` and 10 hex digits of the sha256 of
    ``hashed`` (by default of ``text``)."""
    if len(text) > limit or not all(c.isalnum() or c in "._=,+-" for c in text):
        return "set-" + hashlib.sha256((text if hashed is None else hashed).encode()).hexdigest()[:10]
    return text


def default_folder(preset: Preset, stand_in: dict[str, bool] | None = None, root: Path = Path("runs")) -> Path:
    """The output folder of a run with ``preset`` whose parts (``"mnist"``, ``"frey"``) use the offline
    stand-in where ``stand_in[part]`` is true.

    ``runs/<preset>``, then the overrides (``-epochs=3,rho=0.1``, or ``-set-<hash>`` when long), then
    ``-stand-in`` when every part run is on the stand-in, or ``-<part>-stand-in`` naming the one that is:
    each folder holds results of one kind of data per part, so moving from the stand-in to the real data
    (or back) never meets results of the other.
    """
    name = preset.name
    changed = overrides(preset)
    if changed:
        name += "-" + safe_name(slug(changed.items()), hashed=json.dumps(changed, sort_keys=True))
    on_stand_in = [part for part, used in (stand_in or {}).items() if used]
    if on_stand_in:
        name += "-stand-in" if len(on_stand_in) == len(stand_in) else f"-{'-'.join(on_stand_in)}-stand-in"
    return root / name
