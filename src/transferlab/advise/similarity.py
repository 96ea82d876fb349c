"""How alike are a source's images and the target's, seen through the source backbone's features, and
where does that put the task in the size-similarity matrix (seed 002)?

Two measures on features float (N, D) of a source sample and a target sample:

- :func:`frechet_distance`: ||mu_s - mu_t||^2 + tr(S_s + S_t - 2 (S_s S_t)^1/2) between Gaussians fitted
  to the two samples (FID's formula on this backbone's features; 0 for identical distributions).
- :func:`mmd2`: the unbiased squared maximum mean discrepancy with a Gaussian kernel whose bandwidth is
  the median pairwise distance of the pooled sample (0 in expectation for identical distributions).
- :func:`domain_accuracy`: cross-validated accuracy of a logistic regression told to tell source from
  target features, on balanced samples: 0.5 = indistinguishable, 1.0 = fully separable.

The matrix (:func:`place`): the target is *small* below ``SMALL_PER_CLASS`` = 1,000 labelled images per
class (seed 002's rule of thumb) and *similar* when the domain classifier reaches at most
``SIMILAR_DOMAIN_ACCURACY`` = 0.75. Why 0.75: the proxy A-distance of Ben-David et al. (2007),
d_A = 2 (1 - 2 err) = 2 (2 acc - 1), runs from 0 (same distribution) to 2 (disjoint); 0.75 is its
midpoint d_A = 1, the point past which a linear probe on these features already tells the two apart
more often right than wrong by a wide margin. It is a convention, stated so that it can be argued with.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from transferlab.errors import TransferlabError

SMALL_PER_CLASS = (
    1000  # seed 002: "consider that your dataset is small if it has less than 1000 images per class"
)
SIMILAR_DOMAIN_ACCURACY = 0.75  # proxy A-distance 1.0, the midpoint of its 0..2 range (see module docstring)
MAX_SAMPLE = 500  # images per side for the similarity measures (O(N^2) kernel, O(D^3) matrix root)


def _pair(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, t = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1] or len(s) < 2 or len(t) < 2:
        raise TransferlabError(
            f"similarity needs two feature arrays (N, D) with the same D and N >= 2, got {s.shape} and {t.shape}"
        )
    return s, t


def frechet_distance(source: np.ndarray, target: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature samples (N, D) and (M, D); >= 0."""
    from scipy import linalg

    s, t = _pair(source, target)
    mu_s, mu_t = s.mean(0), t.mean(0)
    cov_s, cov_t = np.atleast_2d(np.cov(s, rowvar=False)), np.atleast_2d(np.cov(t, rowvar=False))
    with warnings.catch_warnings():  # with fewer images than features the covariances are singular: expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_s @ cov_t)
    root = np.real(root)  # numerical noise can leave tiny imaginary parts
    value = float(np.sum((mu_s - mu_t) ** 2) + np.trace(cov_s) + np.trace(cov_t) - 2 * np.trace(root))
    return max(value, 0.0)


def mmd2(source: np.ndarray, target: np.ndarray, bandwidth: float | None = None) -> float:
    """Unbiased squared MMD with k(a, b) = exp(-||a - b||^2 / (2 h^2)); h = ``bandwidth`` or the median
    pairwise distance of the pooled sample. Can be slightly negative for identical distributions."""
    s, t = _pair(source, target)
    pooled = np.vstack([s, t])
    sq = np.sum(pooled**2, 1)
    distances2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    if bandwidth is None:
        off_diagonal = distances2[np.triu_indices(len(pooled), 1)]
        bandwidth = float(np.sqrt(np.median(off_diagonal))) or 1.0
    kernel = np.exp(-distances2 / (2 * bandwidth**2))
    n, m = len(s), len(t)
    k_ss, k_tt, k_st = kernel[:n, :n], kernel[n:, n:], kernel[:n, n:]
    return float(
        (k_ss.sum() - np.trace(k_ss)) / (n * (n - 1))
        + (k_tt.sum() - np.trace(k_tt)) / (m * (m - 1))
        - 2 * k_st.mean()
    )


def domain_accuracy(source: np.ndarray, target: np.ndarray, *, folds: int = 5, seed: int = 0) -> float:
    """Mean ``folds``-fold cross-validated accuracy of standardised logistic regression separating
    source (label 0) from target (label 1), on equal-size samples (the larger side subsampled)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    s, t = _pair(source, target)
    rng = np.random.default_rng(seed)
    n = min(len(s), len(t))
    if n < folds:
        raise TransferlabError(f"the domain classifier needs at least {folds} images per side, got {n}")
    s, t = s[rng.permutation(len(s))[:n]], t[rng.permutation(len(t))[:n]]
    x, y = np.vstack([s, t]), np.repeat([0, 1], n)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000))
    return float(
        cross_val_score(model, x, y, cv=StratifiedKFold(folds, shuffle=True, random_state=seed)).mean()
    )


def subsample(features: np.ndarray, limit: int = MAX_SAMPLE, seed: int = 0) -> np.ndarray:
    """At most ``limit`` rows of ``features``, drawn without replacement with ``seed``."""
    if len(features) <= limit:
        return features
    return features[np.sort(np.random.default_rng(seed).permutation(len(features))[:limit])]


def similarity(source: np.ndarray, target: np.ndarray, seed: int = 0) -> dict[str, float]:
    """{"frechet", "mmd2", "domain_accuracy"} between (subsamples of) the two feature arrays."""
    s, t = subsample(source, seed=seed), subsample(target, seed=seed)
    return {
        "frechet": frechet_distance(s, t),
        "mmd2": mmd2(s, t),
        "domain_accuracy": domain_accuracy(s, t, seed=seed),
    }


@dataclass(frozen=True)
class Placement:
    """Where a task sits in the size-similarity matrix and why."""

    quadrant: (
        int  # seed 002's numbering: 1 large+different, 2 large+similar, 3 small+different, 4 small+similar
    )
    small: bool
    similar: bool | None  # None: no source images to compare with (random init); treated as different
    per_class: float  # labelled training images per class
    domain_accuracy: float | None

    @property
    def label(self) -> str:
        size = "small" if self.small else "large"
        similar = {True: "similar", False: "different", None: "different (no source images to compare)"}[
            self.similar
        ]
        return f"quadrant {self.quadrant}: {size} dataset, {similar}"

    @property
    def reason(self) -> str:
        size = (
            f"{self.per_class:.0f} labelled images per class is {'below' if self.small else 'at least'} "
            f"{SMALL_PER_CLASS}"
        )
        if self.domain_accuracy is None:
            return f"{size}; similarity unknown (the source has no images), so the cautious 'different'"
        relation = "<=" if self.similar else ">"
        return (
            f"{size}; a linear domain classifier tells source from target with accuracy "
            f"{self.domain_accuracy:.2f} {relation} {SIMILAR_DOMAIN_ACCURACY}"
        )


def place(per_class: float, domain_acc: float | None) -> Placement:
    """The quadrant for ``per_class`` labelled images per class and a domain-classifier accuracy."""
    small = per_class < SMALL_PER_CLASS
    similar = None if domain_acc is None else domain_acc <= SIMILAR_DOMAIN_ACCURACY
    quadrant = {(False, False): 1, (False, True): 2, (True, False): 3, (True, True): 4}[
        (small, bool(similar))
    ]
    return Placement(quadrant, small, similar, float(per_class), domain_acc)
