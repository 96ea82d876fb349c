"""Transferability scores: how well a source's features (or predictions) suit a labelled target, computed
on cached features in seconds, before any fine-tuning.

Every function takes the target's training subset: ``features`` float (N, D) from the source backbone or
``source_probs`` float (N, Z) (the source model's class probabilities), and int ``labels`` (N,) in 0..K-1.
Higher is better for every score.

- :func:`logme`: You et al. 2021, "LogME: Practical Assessment of Pre-trained Models for Transfer
  Learning" — the maximised log marginal evidence (per image, averaged over the K one-vs-rest targets) of
  Bayesian linear regression from the features to the one-hot labels (nats).
- :func:`leep`: Nguyen et al. 2020, "LEEP" — mean log-likelihood of the labels under the source's
  probabilities pushed through the empirical conditional P(y | z) (nats, <= 0).
- :func:`nce`: Tran et al. 2019, "Transferability and Hardness of Supervised Classification Tasks" —
  negative conditional entropy -H(Y | Z) of the labels given the source's hard predictions (nats, <= 0).
- :func:`h_score`: Bao et al. 2019, "An Information-theoretic Approach to Transferability" —
  tr(cov(f)^-1 cov(E[f | y])); by default the regularised form of Ibrahim et al. 2022, "Newer is not
  always better: rethinking transferability metrics" (Ledoit-Wolf shrinkage alpha of cov(f), and the
  between-class term scaled by 1 - alpha): the plain inverse is singular whenever D >= N, as with a few
  hundred images and 1,280 features.
- :func:`knn_accuracy`: leave-one-out k-nearest-neighbour accuracy on standardised features (a fraction).
"""

from __future__ import annotations

import numpy as np

from transferlab.errors import TransferlabError

SCORES = ("logme", "leep", "nce", "h_score", "knn")
KNN_WORKSPACE_BYTES = 128 * 2**20  # memory for kNN's distance blocks; any size gives the same votes


def _check(values: np.ndarray, labels: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    values, labels = np.asarray(values, dtype=np.float64), np.asarray(labels)
    if values.ndim != 2 or len(values) == 0:
        raise TransferlabError(f"{what} must be a non-empty (N, D) array, got shape {values.shape}")
    if labels.shape != (len(values),) or not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
        raise TransferlabError(
            f"labels must be {len(values)} integers >= 0 (one per row of {what}), got {labels.shape}"
        )
    if not np.isfinite(values).all():
        raise TransferlabError(f"{what} contain NaN or infinite values")
    classes = int(labels.max()) + 1
    if len(np.unique(labels)) < 2:
        raise TransferlabError("a transferability score needs at least 2 classes among the labels")
    return values, labels.astype(np.int64), classes


# ------------------------------------------------------------------------------------------ LogME


def _evidence(
    y: np.ndarray, proj: np.ndarray, s: np.ndarray, n: int, d: int, tol: float, max_iter: int
) -> float:
    """Maximised log evidence / n of y (N,) for one target, by the fixed point of You et al. 2021
    (Algorithm 1). With F = U diag(sqrt(s)) V^T (the r non-zero singular values), proj = U^T y (r,)."""
    alpha, beta = 1.0, 1.0
    # The part of y outside F's column space: no choice of weights reaches it (0 when rank F = N).
    outside = 0.0 if len(s) >= n else max(float(y @ y) - float(proj @ proj), 0.0)

    def posterior(alpha: float, beta: float) -> tuple[float, float, float]:
        """(gamma, m^T m, ||y - F m||^2); the residual as outside + sum (proj alpha / (alpha + beta s))^2,
        free of the cancellation of ||y||^2 - 2 y^T F m + ||F m||^2 when beta is large."""
        shrink = alpha + beta * s
        coeffs = beta * np.sqrt(s) * proj / shrink  # m on F's right singular vectors
        return (
            float(np.sum(beta * s / shrink)),
            float(coeffs @ coeffs),
            outside + float(np.sum((proj * alpha / shrink) ** 2)),
        )

    for _ in range(max_iter):
        gamma, m2, residual2 = posterior(alpha, beta)
        if n - gamma <= 1e-10 * n or residual2 <= 0.0:
            # More features than images can interpolate y: the evidence then rises towards its limit as the
            # noise precision beta grows without bound; stop at that limit (the value no longer changes).
            break
        new_alpha, new_beta = gamma / max(m2, 1e-300), (n - gamma) / residual2
        done = abs(new_alpha / new_beta - alpha / beta) <= tol * (alpha / beta)
        alpha, beta = new_alpha, new_beta
        if done:
            break
    _, m2, residual2 = posterior(alpha, beta)
    # log det(alpha I + beta F^T F): the D - r directions outside F's row space contribute log(alpha) each.
    logdet = float(np.sum(np.log(alpha + beta * s))) + (d - len(s)) * np.log(alpha)
    evidence = (
        d / 2 * np.log(alpha)
        + n / 2 * np.log(beta)
        - logdet / 2
        - beta / 2 * residual2
        - alpha / 2 * m2
        - n / 2 * np.log(2 * np.pi)
    )
    return float(evidence / n)


def logme(features: np.ndarray, labels: np.ndarray, *, tol: float = 1e-6, max_iter: int = 1000) -> float:
    """LogME of features (N, D) for integer labels (N,): the mean over the K one-hot targets of the
    maximised log evidence per image of y_k = F w + noise, w ~ N(0, 1/alpha), noise ~ N(0, 1/beta), with
    alpha, beta found by the paper's fixed-point iteration (to relative change ``tol`` of alpha/beta).
    One thin SVD of F serves every class."""
    f, y, classes = _check(features, labels, "features")
    n, d = f.shape
    u, sv, _ = np.linalg.svd(f, full_matrices=False)
    keep = sv > sv.max() * max(n, d) * np.finfo(np.float64).eps if sv.size else sv > 0
    u, s = u[:, keep], sv[keep] ** 2
    evidences = []
    for k in range(classes):
        target = (y == k).astype(np.float64)
        evidences.append(_evidence(target, u.T @ target, s, n, d, tol, max_iter))
    return float(np.mean(evidences))


# ------------------------------------------------------------------------------------ LEEP and NCE


def _check_probs(source_probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    probs, y, classes = _check(source_probs, labels, "source probabilities")
    if (probs < 0).any() or not np.allclose(probs.sum(1), 1.0, atol=1e-4):
        raise TransferlabError(
            "source probabilities must be non-negative rows summing to 1 (a softmax output)"
        )
    return probs, y, classes


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP of the source's probabilities theta (N, Z) for target labels (N,): with the empirical joint
    P(y, z) = mean_i theta_iz [y_i = y] and P(y | z) = P(y, z) / P(z),
    LEEP = mean_i log sum_z P(y_i | z) theta_iz (nats; 0 when z determines y)."""
    probs, y, classes = _check_probs(source_probs, labels)
    onehot = np.eye(classes)[y]  # (N, K)
    joint = onehot.T @ probs / len(y)  # (K, Z)
    marginal = joint.sum(0, keepdims=True)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y | z)
    likelihood = np.einsum("nz,nz->n", probs, conditional[y])
    return float(np.mean(np.log(np.maximum(likelihood, 1e-300))))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE of the source's hard labels z (N,) (e.g. argmax of its probabilities) for target labels y (N,):
    -H(Y | Z) = sum_{y,z} P(y, z) log P(y | z) over the empirical joint (nats; 0 when z determines y)."""
    z, y = np.asarray(source_labels), np.asarray(labels)
    if z.shape != y.shape or z.ndim != 1 or len(z) == 0:
        raise TransferlabError(
            f"source labels {z.shape} and labels {y.shape} must be two equal-length 1-D arrays"
        )
    _, z_index = np.unique(z, return_inverse=True)
    _, y_index = np.unique(y, return_inverse=True)
    joint = np.zeros((y_index.max() + 1, z_index.max() + 1))
    np.add.at(joint, (y_index, z_index), 1.0)
    joint /= len(y)
    conditional = joint / joint.sum(0, keepdims=True)
    mask = joint > 0
    return float(np.sum(joint[mask] * np.log(conditional[mask])))


# ---------------------------------------------------------------------------------- H-score, kNN


def h_score(features: np.ndarray, labels: np.ndarray, *, shrinkage: bool = True) -> float:
    """H-score of features (N, D): large when class means spread far relative to the features' total
    spread. shrinkage=True: the regularised H-score of Ibrahim et al. 2022 (tllib's
    ``regularized_h_score``), tr(inv(S_alpha) (1 - alpha) cov(E[f | y])) with S_alpha the Ledoit-Wolf
    covariance (1 - alpha) S + alpha mu I, well-conditioned for D >= N; False: Bao et al.'s
    tr(pinv(S) cov(E[f | y])) with the plain sample covariance S, in [0, K - 1]."""
    f, y, _ = _check(features, labels, "features")
    f = f - f.mean(0)
    class_means = np.zeros_like(f)
    for k in np.unique(y):
        class_means[y == k] = f[y == k].mean(0)
    between = class_means.T @ class_means / len(f)
    if shrinkage:
        from sklearn.covariance import LedoitWolf

        estimate = LedoitWolf(assume_centered=True).fit(f)
        cov, alpha = estimate.covariance_, float(estimate.shrinkage_)
        # The between-class term is shrunk by the same (1 - alpha) as S: without it, pure noise with
        # D near or above N (alpha -> 1, S_alpha -> mu I) scores about D (K - 1) / N instead of 0 and
        # outranks informative features. Both terms use 1/N (tllib's np.cov uses 1/(N - 1) for the
        # between term only: a factor N / (N - 1) larger, which no ranking notices).
        between = (1.0 - alpha) * between
    else:
        cov = f.T @ f / len(f)
    return float(np.trace(np.linalg.pinv(cov, rcond=1e-10, hermitian=True) @ between))


def knn_chunk_rows(n: int, workspace_bytes: int | None = None) -> int:
    """Rows of the (rows, n) distance block :func:`knn_accuracy` handles at once: about 24 bytes per
    entry (float64 distances, a float64 temporary, then a partitioned copy; a mask) within ``workspace_bytes``
    (default ``KNN_WORKSPACE_BYTES``), at least one row."""
    budget = KNN_WORKSPACE_BYTES if workspace_bytes is None else workspace_bytes
    return max(1, min(n, budget // (24 * n)))


def knn_accuracy(features: np.ndarray, labels: np.ndarray, *, k: int = 5) -> float:
    """Leave-one-out accuracy of a k-nearest-neighbour vote (Euclidean, standardised features; ties go to
    the smaller label) over the N images: each image is classified by the k others nearest to it (of
    equally distant images, the lower-indexed ones, as a stable sort would pick). Distances are computed
    for :func:`knn_chunk_rows` images at a time, so memory stays bounded (the full N x N matrix of
    Fashion-MNIST's 54,000 training images would be 23 GB)."""
    f, y, classes = _check(features, labels, "features")
    n = len(f)
    if not isinstance(k, int) or not 1 <= k < n:
        raise TransferlabError(f"k={k!r} is invalid for {n} images; give 1 <= k < {n}")
    std = f.std(0)
    f = (f - f.mean(0)) / np.where(std > 0, std, 1.0)
    sq = np.sum(f * f, 1)
    votes = np.zeros((n, classes))
    step = knn_chunk_rows(n)
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n))
        # (|a|^2 + |b|^2) - 2 a.b in that order, as the dense matrix was (the same rounding, so the same
        # neighbours), with one temporary block instead of three.
        distances = sq[rows, None] + sq[None, :]
        distances -= 2 * (f[rows] @ f.T)
        distances[np.arange(len(rows)), rows] = np.inf  # leave one out: an image never votes for itself
        kth = np.partition(distances, k - 1, axis=1)[:, k - 1 : k]
        nearest = distances <= kth
        # Images tied at the k-th distance: keep the lowest-indexed, as the stable sort did before
        # chunking (argpartition alone would pick among them arbitrarily).
        for r in np.flatnonzero(nearest.sum(1) > k):
            tied = np.flatnonzero(distances[r] == kth[r, 0])
            nearest[r, tied[k - int(np.sum(distances[r] < kth[r, 0])) :]] = False
        hit_rows, hit_cols = np.nonzero(nearest)
        np.add.at(votes, (rows[hit_rows], y[hit_cols]), 1.0)
    return float(np.mean(votes.argmax(1) == y))


def score_all(
    labels: np.ndarray, features: np.ndarray | None = None, source_probs: np.ndarray | None = None
) -> dict[str, float | None]:
    """Every score that the given inputs allow; the others are None (e.g. LEEP without probabilities)."""
    out: dict[str, float | None] = dict.fromkeys(SCORES)
    if features is not None:
        out.update(
            logme=logme(features, labels),
            h_score=h_score(features, labels),
            knn=knn_accuracy(features, labels),
        )
    if source_probs is not None:
        out.update(leep=leep(source_probs, labels), nce=nce(np.asarray(source_probs).argmax(1), labels))
    return out
