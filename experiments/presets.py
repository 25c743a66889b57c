"""Settings of the main job. ``paper`` is the study's; ``quick`` runs the same pipeline on a subset."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Preset:
    """Every number the experiments use, in one place (written into the report and metrics.json)."""

    name: str
    seed: int = 0
    # MNIST models
    n_train: int | None = None          # None: all 60,000
    n_test: int | None = None           # None: all 10,000
    epochs: int = 10
    batch_size: int = 128
    learning_rate: float = 1e-3
    latent_dim: int = 128
    rho: float = 0.05
    sparsity_weight: float = 1e-3
    contractive_weight: float = 1e-4
    remedy_mode: str = "hutchinson"     # the contractive remedy: linear latent, full-Jacobian penalty
    remedy_probes: int = 1
    # evaluation
    tsne_points: int | None = None      # None: the whole test set
    tsne_perplexity: float = 30.0
    tsne_iterations: int = 300
    n_pairs: int = 20
    alphas: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    # Frey Face VAE
    vae_epochs: int = 200
    vae_batch_size: int = 128
    vae_learning_rate: float = 1e-3
    vae_latent_dim: int = 20
    vae_hidden: int = 256
    test_fraction: float = 0.1
    traversal_dim: int = 4
    traversal_range: tuple[float, float] = (-2.0, 2.0)
    traversal_steps: int = 9
    n_faces: int = 15
    grid_steps: int = 9

    def with_overrides(self, **changes) -> "Preset":
        return replace(self, **changes)


PRESETS = {
    "paper": Preset(name="paper"),
    "quick": Preset(name="quick", n_train=10_000, n_test=2_000, epochs=2, tsne_points=1_000,
                    vae_epochs=50),
    # for tests: the whole pipeline in seconds
    "smoke": Preset(name="smoke", n_train=256, n_test=128, epochs=1, batch_size=64, tsne_points=100,
                    tsne_iterations=250, n_pairs=4, vae_epochs=2, n_faces=6, traversal_steps=5, grid_steps=4),
}


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"Unknown preset {name!r}; expected one of {sorted(PRESETS)}.") from None
