"""Each transferability score against its paper's definition on synthetic data with known answers; LogME
also against a plain, slow implementation of You et al. 2021's fixed point (matrix inverse, no SVD)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlab.advise.scores import (
    KNN_WORKSPACE_BYTES,
    h_score,
    knn_accuracy,
    knn_chunk_rows,
    leep,
    logme,
    nce,
    score_all,
)
from transferlab.errors import TransferlabError


def reference_logme(features: np.ndarray, labels: np.ndarray, iterations: int = 10_000) -> float:
    """The paper's evidence maximisation written out: A = alpha I + beta F^T F, m = beta A^-1 F^T y,
    gamma = sum beta s / (alpha + beta s), alpha <- gamma / m^T m, beta <- (N - gamma) / ||y - F m||^2."""
    f = features.astype(np.float64)
    n, d = f.shape
    eig = np.linalg.eigvalsh(f.T @ f)
    evidences = []
    for k in range(labels.max() + 1):
        y = (labels == k).astype(np.float64)
        alpha, beta = 1.0, 1.0
        for _ in range(iterations):
            a = alpha * np.eye(d) + beta * f.T @ f
            m = beta * np.linalg.inv(a) @ f.T @ y
            gamma = np.sum(beta * eig / (alpha + beta * eig))
            previous = alpha / beta
            alpha, beta = gamma / (m @ m), (n - gamma) / np.sum((y - f @ m) ** 2)
            if abs(alpha / beta - previous) <= 1e-13 * previous:
                break
        a = alpha * np.eye(d) + beta * f.T @ f
        m = beta * np.linalg.inv(a) @ f.T @ y
        evidence = (
            d / 2 * math.log(alpha)
            + n / 2 * math.log(beta)
            - 0.5 * np.linalg.slogdet(a)[1]
            - beta / 2 * np.sum((y - f @ m) ** 2)
            - alpha / 2 * m @ m
            - n / 2 * math.log(2 * math.pi)
        )
        evidences.append(evidence / n)
    return float(np.mean(evidences))


def blobs(n_per_class: int, classes: int, dim: int, separation: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim)) * separation
    labels = np.repeat(np.arange(classes), n_per_class)
    return centres[labels] + rng.normal(size=(len(labels), dim)), labels


@pytest.mark.parametrize(("n", "d"), [(60, 8), (30, 50)])  # more images than features, and fewer
def test_logme_matches_the_slow_reference(n, d):
    rng = np.random.default_rng(1)
    labels = np.arange(n) % 3
    features = rng.normal(size=(n, d))
    features[:, :3] += 1.5 * np.eye(3)[labels]  # every class has a direction: the optimum is interior
    assert logme(features, labels, tol=1e-12) == pytest.approx(
        reference_logme(features, labels), rel=1e-6, abs=1e-8
    )


def test_logme_prefers_informative_features_and_is_invariant_to_label_names():
    informative, labels = blobs(40, 4, 16, separation=3.0)
    noise = np.random.default_rng(2).normal(size=informative.shape)
    assert logme(informative, labels) > logme(noise, labels) + 0.2
    relabelled = np.array([2, 0, 3, 1])[labels]  # a permutation of the class ids changes nothing
    assert logme(informative, relabelled) == pytest.approx(logme(informative, labels), rel=1e-9)


def test_logme_stays_finite_when_features_can_interpolate_the_labels():
    # 270 images, 1,280 features (lite0 at 1% of five classes): the evidence's optimum is at infinite beta.
    informative, labels = blobs(54, 5, 1280, separation=0.3)
    informative = np.abs(informative)
    noise = np.abs(np.random.default_rng(5).normal(size=informative.shape))
    good, bad = logme(informative, labels), logme(noise, labels)
    assert np.isfinite(good) and np.isfinite(bad) and good > bad


def test_leep_known_answers():
    labels = np.repeat(np.arange(4), 25)
    # A source whose classes map one-to-one onto the target's (z = (y + 1) mod 4) with certainty: P(y|z) = 1.
    certain = np.eye(4)[(labels + 1) % 4]
    assert leep(certain, labels) == pytest.approx(0.0, abs=1e-12)
    # Probabilities that ignore the image: the best possible is the class prior, log(1/4) for balanced classes.
    uniform = np.full((100, 7), 1 / 7)
    assert leep(uniform, labels) == pytest.approx(math.log(1 / 4))
    # Hand-computed: two images, theta = [[0.9, 0.1], [0.2, 0.8]], labels [0, 1].
    theta, y = np.array([[0.9, 0.1], [0.2, 0.8]]), np.array([0, 1])
    joint = np.array([[0.45, 0.05], [0.1, 0.4]])  # P(y, z) = mean_i theta_iz [y_i = y]
    cond = joint / joint.sum(0)
    expected = np.mean([math.log(cond[0] @ theta[0]), math.log(cond[1] @ theta[1])])
    assert leep(theta, y) == pytest.approx(expected)


def test_nce_known_answers():
    labels = np.repeat(np.arange(3), 20)
    assert nce(labels + 10, labels) == pytest.approx(0.0, abs=1e-12)  # z determines y
    # z independent of y (each z value holds every class equally): -H(Y) = log(1/3).
    independent = np.tile(np.arange(2), 30)
    assert nce(independent, labels) == pytest.approx(math.log(1 / 3))
    # Hand-computed: (y, z) = (0,0), (0,0), (1,0), (1,1) -> -H(Y|Z) = 3/4 * H(2/3, 1/3) negated.
    value = nce(np.array([0, 0, 0, 1]), np.array([0, 0, 1, 1]))
    assert value == pytest.approx(0.75 * (2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)))


def test_h_score_closed_form():
    # f = y + noise (sd sigma), y balanced in {0, 1}: cov(E[f|y]) = 1/4, cov(f) = 1/4 + sigma^2.
    rng = np.random.default_rng(3)
    labels = np.repeat([0, 1], 20000)
    sigma = 0.5
    features = (labels + rng.normal(scale=sigma, size=len(labels)))[:, None]
    assert h_score(features, labels, shrinkage=False) == pytest.approx(0.25 / (0.25 + sigma**2), rel=0.02)
    # Two copies of the same feature: a singular covariance; the pseudo-inverse keeps the same answer.
    doubled = np.hstack([features, features])
    assert h_score(doubled, labels, shrinkage=False) == pytest.approx(0.25 / (0.25 + sigma**2), rel=0.02)
    informative, y = blobs(60, 5, 20, separation=1.0)
    noise = np.random.default_rng(4).normal(size=informative.shape)
    assert h_score(noise, y) < 0.5 < 2.0 < h_score(informative, y)
    assert h_score(informative, y, shrinkage=False) <= 4 + 1e-9  # plain covariance: at most K - 1
    wide, y_wide = blobs(
        20, 5, 200, separation=1.0
    )  # D > N: singular plain covariance, shrinkage stays finite
    assert 0 < h_score(wide, y_wide) < np.inf


def tllib_regularized_h_score(features: np.ndarray, labels: np.ndarray) -> float:
    """tllib's ``regularized_h_score`` (Ibrahim et al. 2022) written out: Ledoit-Wolf covariance of the
    features, np.cov of the class-mean features, and tr(pinv(cov_alpha) (1 - alpha) cov_between)."""
    from sklearn.covariance import LedoitWolf

    f = features.astype(np.float64)
    f = f - f.mean(0, keepdims=True)
    estimate = LedoitWolf(assume_centered=False).fit(f)
    g = np.zeros_like(f)
    for k in range(labels.max() + 1):
        g[labels == k] = f[labels == k].mean(0)
    between = np.cov(g, rowvar=False)
    return float(
        np.trace(np.linalg.pinv(estimate.covariance_, rcond=1e-15) @ ((1 - estimate.shrinkage_) * between))
    )


@pytest.mark.parametrize(("n", "d"), [(60, 8), (50, 200)])
def test_h_score_matches_tllib_regularized_h_score(n, d):
    features, labels = blobs(n // 5, 5, d, separation=0.7, seed=n + d)
    # tllib's between-class term uses np.cov's 1/(N - 1), ours 1/N like the Ledoit-Wolf covariance.
    expected = tllib_regularized_h_score(features, labels) * (n - 1) / n
    assert h_score(features, labels) == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("d", [80, 100, 300])  # D close to N = 100, and above it
def test_h_score_of_noise_is_near_zero_and_below_informative_features(d):
    # Without the (1 - alpha) factor on the between-class term, noise scored about D (K - 1) / N
    # (3.2 to 12 here) and outranked the informative features.
    informative, labels = blobs(20, 5, d, separation=0.5, seed=d)
    noise = np.random.default_rng(d + 1).normal(size=informative.shape)
    assert 0 <= h_score(noise, labels) < 0.5
    assert h_score(noise, labels) < h_score(informative, labels)


def test_knn_accuracy_known_answers():
    separated, labels = blobs(15, 3, 5, separation=50.0)
    assert knn_accuracy(separated, labels, k=3) == 1.0
    # Hand-made: on a line, points 0, 1, 2 (class 0) and 10, 11 (class 1) with k=1: the point 10's nearest
    # other is 11 and vice versa, so every image is right; relabel 11 as class 0 and both 10 and 11 fail.
    line = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    assert knn_accuracy(line, np.array([0, 0, 0, 1, 1]), k=1) == 1.0
    assert knn_accuracy(line, np.array([0, 0, 0, 1, 0]), k=1) == pytest.approx(3 / 5)


def dense_knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int) -> float:
    """knn_accuracy as it was before chunking: the whole N x N distance matrix and a stable argsort."""
    f = features.astype(np.float64)
    std = f.std(0)
    f = (f - f.mean(0)) / np.where(std > 0, std, 1.0)
    sq = np.sum(f * f, 1)
    distances = sq[:, None] + sq[None, :] - 2 * f @ f.T
    np.fill_diagonal(distances, np.inf)
    nearest = np.argsort(distances, axis=1, kind="stable")[:, :k]
    votes = np.zeros((len(f), labels.max() + 1))
    np.add.at(votes, (np.repeat(np.arange(len(f)), k), labels[nearest].ravel()), 1.0)
    return float(np.mean(votes.argmax(1) == labels))


@pytest.mark.parametrize("workspace", [1, 24 * 100 * 7, 2**30])  # one row, 7 rows, one block per chunk
def test_knn_accuracy_in_chunks_equals_the_dense_computation(monkeypatch, workspace):
    monkeypatch.setattr("transferlab.advise.scores.KNN_WORKSPACE_BYTES", workspace)
    for seed in range(3):
        features, labels = blobs(20, 5, 6, separation=0.8, seed=seed)
        for k in (1, 4, 5, 9):
            assert knn_accuracy(features, labels, k=k) == dense_knn_accuracy(features, labels, k)
    # Ties everywhere: few distinct points, each repeated (equal distances), and labels that disagree.
    rng = np.random.default_rng(7)
    coarse = rng.integers(0, 3, size=(100, 2)).astype(float)
    noisy_labels = rng.integers(0, 4, size=100)
    for k in (1, 3, 5, 12):
        assert knn_accuracy(coarse, noisy_labels, k=k) == dense_knn_accuracy(coarse, noisy_labels, k)
    # Points -1, 0, 1: the middle one is equally far from both ends and takes the lower-indexed one's
    # label (a wrong vote); picking the other end would give 2/3.
    assert knn_accuracy(np.array([[-1.0], [0.0], [1.0]]), np.array([1, 0, 0]), k=1) == pytest.approx(1 / 3)


def test_knn_accuracy_memory_is_bounded_by_the_workspace(monkeypatch):
    import tracemalloc

    assert knn_chunk_rows(54_000) * 54_000 * 24 <= KNN_WORKSPACE_BYTES  # Fashion-MNIST's training set
    assert knn_chunk_rows(10**9) == 1 and knn_chunk_rows(10) == 10
    n = 3000  # dense: a 72 MB distance matrix (plus as much again for the argsort)
    monkeypatch.setattr("transferlab.advise.scores.KNN_WORKSPACE_BYTES", 2**20)
    features, labels = blobs(n // 3, 3, 4, separation=3.0)
    tracemalloc.start()
    try:
        accuracy = knn_accuracy(features, labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert accuracy > 0.9 and peak < 8 * 2**20


def test_score_all_and_bad_input():
    features, labels = blobs(10, 2, 4, separation=2.0)
    scores = score_all(labels, features=features)
    assert scores["leep"] is None and scores["nce"] is None and scores["logme"] is not None
    with pytest.raises(TransferlabError, match="at least 2 classes"):
        logme(features, np.zeros(20, dtype=int))
    with pytest.raises(TransferlabError, match="summing to 1"):
        leep(np.ones((20, 3)), labels)
    with pytest.raises(TransferlabError, match="k=20 is invalid for 20 images"):
        knn_accuracy(features, labels, k=20)
