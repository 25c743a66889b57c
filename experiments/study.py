"""The published study's numbers and claims, copied from its text, in one place.

Nothing here is a result of ours: the report prints these only in columns and rows labelled "study".
The study's MNIST values are for its full settings (``--preset paper``); its interpolation tables use a
definition other than ours (see :func:`experiments.metrics.encoder_blend_consistency`).
"""

from __future__ import annotations

INF = float("inf")

STUDY = {
    # Section 3.1.4: training loss of the last epoch, test MSE, logistic-regression accuracy on the codes
    "mnist": {
        "sparse": {"final_train_loss": 0.018814, "test_mse": 0.010388, "probe_accuracy": 0.9649},
        "contractive": {"final_train_loss": 0.084900, "test_mse": 0.078306, "probe_accuracy": 0.8479},
    },
    # Tables 1 and 2: 20 pairs of different digits, alpha = 0, 0.2, ..., 1
    "interpolation": {
        "alphas": (0.0, 0.2, 0.4, 0.6, 0.8, 1.0),
        "sparse": {
            "psnr": (INF, 28.2710, 22.9598, 22.9727, 27.8999, INF),
            "l2": (0.0, 0.1453, 0.2438, 0.2441, 0.1460, 0.0),
        },
        "contractive": {
            "psnr": (INF, INF, INF, INF, INF, INF),
            "l2": (0.0, 100.7631, 157.2547, 157.8594, 102.3415, 0.0),
        },
    },
    # Section 3.2.4, about its VAE with a Bernoulli (binary cross-entropy) decoder; no numbers were published
    "vae_claims": {
        "reconstruction": "High-fidelity reconstructions of Frey Face images.",
        "generation": "Generated 15 novel faces from random N(0, I) samples, resembling training data.",
        "traversal": "Varied dimension 4 from -2.0 to 2.0, showing smooth changes in features like head pose.",
    },
}
