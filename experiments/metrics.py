"""Evaluation: PSNR and L2 of interpolations (ours, and the definition that reproduces the study's tables),
linear probes on latent codes, t-SNE embeddings."""

from __future__ import annotations

import collections

import numpy as np


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 1.0) -> np.ndarray:
    """Peak signal-to-noise ratio per image, 10 log10(range^2 / MSE), in dB.

    Shapes
    ------
    a, b : (N, ...) -> (N,)

    Infinite where the two images are identical (MSE = 0).
    """
    mse = np.mean((a.astype(np.float64) - b) ** 2, axis=tuple(range(1, a.ndim)))
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / mse)


def l2_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance per image. Shapes: a, b : (N, ...) -> (N,)."""
    return np.sqrt(np.sum((a.astype(np.float64) - b) ** 2, axis=tuple(range(1, a.ndim))))


def interpolation_pairs(labels: np.ndarray, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` index pairs (a, b) of images with different labels, drawn without replacement.

    Shapes
    ------
    labels : (N,) -> pairs : (n_pairs, 2)

    Raises ValueError when these labels and ``rng`` give fewer (see :func:`most_interpolation_pairs`).
    """
    pairs = _pairs_of_different_labels(labels, n_pairs, rng)
    if len(pairs) < n_pairs:
        raise ValueError(f"Could only form {len(pairs)} pairs of different labels, {n_pairs} requested.")
    return np.array(pairs)


def most_interpolation_pairs(labels: np.ndarray, rng: np.random.Generator) -> int:
    """How many pairs :func:`interpolation_pairs` can draw from ``labels`` with a generator in the state of ``rng``."""
    return len(_pairs_of_different_labels(labels, None, rng))


def _pairs_of_different_labels(labels: np.ndarray, limit: int | None, rng: np.random.Generator) -> list:
    """Go through the images in a random order; pair each one not yet used with the first unused image of
    another label in that order; stop at ``limit`` pairs (None: as many as there are) or at the first image
    left without a partner.

    When the walk reaches an image, every image before it in the order is used, so its partner is the
    earliest unused image of any other label: the head of that label's queue, in O(labels) per pair.
    """
    order = rng.permutation(len(labels))
    queues: dict = {}
    for position, index in enumerate(order):
        queues.setdefault(labels[index].item(), collections.deque()).append(position)
    used = np.zeros(len(order), dtype=bool)
    pairs = []
    for position, index in enumerate(order):
        if len(pairs) == limit:
            break
        if used[position]:
            continue
        heads = []
        for label, queue in queues.items():
            while queue and used[queue[0]]:
                queue.popleft()
            if label != labels[index] and queue:
                heads.append(queue[0])
        if not heads:
            break
        partner = min(heads)
        pairs.append((index, order[partner]))
        used[position] = used[partner] = True
    return pairs


def interpolate(model, x_a: np.ndarray, x_b: np.ndarray, alphas) -> dict[str, np.ndarray]:
    """Decode (1 - alpha) z_a + alpha z_b and compare with the pixel blend (1 - alpha) x_a + alpha x_b.

    Returns the decoded images (len(alphas), P, ...) and, per alpha, the mean PSNR and L2 distance
    over the P pairs. At alpha = 0 and 1 the reference is the original image, so the endpoints
    measure the reconstruction error and every value is finite.

    Shapes
    ------
    x_a, x_b : (P, C, H, W)
    """
    z_a, z_b = model.encode(x_a), model.encode(x_b)
    images, psnrs, distances = [], [], []
    for alpha in alphas:
        decoded = model.decode((1 - alpha) * z_a + alpha * z_b)
        blend = (1 - alpha) * x_a + alpha * x_b
        images.append(decoded)
        psnrs.append(float(np.mean(psnr(decoded, blend))))
        distances.append(float(np.mean(l2_distance(decoded, blend))))
    return {"images": np.stack(images), "psnr": np.array(psnrs), "l2": np.array(distances)}


def encoder_blend_consistency(model, x_a: np.ndarray, x_b: np.ndarray, alphas) -> dict[str, np.ndarray]:
    """The study's interpolation tables as they can be reproduced: the blended code against the code of the
    blended image.

    With z_a = E(x_a), z_b = E(x_b), z = (1 - alpha) z_a + alpha z_b and x = (1 - alpha) x_a + alpha x_b,
    returns per alpha the mean over the P pairs of PSNR(D(z), D(E(x))) in dB and of the latent distance
    ||z - E(x)|| (in the units of the code, not of pixels).

    Both sides are the same computation at alpha = 0 and 1, so there the PSNR is infinite and the distance
    0 for every model; a decoder whose output does not depend on its code gives infinite PSNR at every
    alpha. It measures how far the encoder is from linear along the segment, not the quality of an image:
    :func:`interpolate` is the measure of the decoded images.

    Shapes
    ------
    x_a, x_b : (P, C, H, W) -> psnr, latent_l2 : (len(alphas),)
    """
    z_a, z_b = model.encode(x_a), model.encode(x_b)
    psnrs, distances = [], []
    for alpha in alphas:
        blended_code = (1 - alpha) * z_a + alpha * z_b
        code_of_blend = model.encode((1 - alpha) * x_a + alpha * x_b)
        psnrs.append(float(np.mean(psnr(model.decode(blended_code), model.decode(code_of_blend)))))
        distances.append(float(np.mean(l2_distance(blended_code, code_of_blend))))
    return {"psnr": np.array(psnrs), "latent_l2": np.array(distances)}


def linear_probe_accuracy(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray, seed: int = 0
) -> float:
    """Accuracy of logistic regression fitted on standardized training codes, scored on test codes."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=seed))
    probe.fit(train_codes, train_labels)
    return float(probe.score(test_codes, test_labels))


def codes_are_degenerate(codes: np.ndarray, tolerance: float = 1e-6) -> bool:
    """True when the codes (N, latent_dim) hardly vary across samples, as in a collapsed model.

    t-SNE is undefined there (scikit-learn's Barnes-Hut tree even crashes on identical points).
    """
    return bool(np.max(np.std(codes.astype(np.float64), axis=0)) < tolerance)


def tsne_embedding(codes: np.ndarray, perplexity: float, iterations: int, seed: int) -> np.ndarray | None:
    """2-D t-SNE of the codes, or None when they are degenerate. Shapes: (N, latent_dim) -> (N, 2)."""
    from sklearn.manifold import TSNE

    if codes_are_degenerate(codes):
        return None

    perplexity = min(perplexity, (len(codes) - 1) / 3)  # t-SNE needs perplexity < N / 3
    tsne = TSNE(n_components=2, perplexity=perplexity, max_iter=iterations, init="pca", random_state=seed)
    return tsne.fit_transform(codes.astype(np.float64))
