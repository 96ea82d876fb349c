"""Learning-curve model: test accuracy as a function of labelled images per class, fitted to a study's
runs, with bootstrap uncertainty; and the inverse question, how many labels per class reach X%.

Model (an inverse power law with a ceiling, the usual form of learning curves since Cortes et al. 1994):
    accuracy(n) = c - a * n^(-b),   chance <= c <= 1, a >= 0, 0.001 <= b <= 3
n is labelled training images per class. Fitted by least squares within those bounds to every run (one
point per repeat), so repeats weigh as data, not as one mean; for a fixed b the model is linear in (c, a),
so the fit solves that part exactly and searches b alone (deterministic, ~1 ms).

Uncertainty: ``BOOTSTRAP`` refits on runs resampled with replacement within each size (every size kept),
giving 95% percentile intervals for the curve and for the labels needed.

When extrapolation is unreliable: a power law fitted over a range of n says little far outside it (the
ceiling c, which dominates at large n, is poorly pinned by small-n points). An answer more than
``EXTRAPOLATION_LIMIT`` = 2x beyond the largest n measured (or below the smallest) is flagged
unreliable, and so is any answer whose bootstrap interval is open (some refits never reach the target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from transferlab.errors import TransferlabError

BOOTSTRAP = 200
EXTRAPOLATION_LIMIT = 2.0  # x the measured range of n; a convention (see the module docstring)
CONFIDENCE = 0.95


def _curve(n: np.ndarray, c: float, a: float, b: float) -> np.ndarray:
    return c - a * np.power(n, -b)


B_GRID = np.geomspace(1e-3, 3.0, 100)  # exponents tried before the bounded 1-D refinement


def _linear_part(
    x: np.ndarray, accuracy: np.ndarray, chance: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For fixed exponents (rows of x = n^-b, shape (G, N)) the model c - a x is linear: (c, a, squared
    error), each (G,), by least squares within chance <= c <= 1, a >= 0 (a bound that binds is fixed and
    the other refitted)."""
    xm, ym = x.mean(1, keepdims=True), accuracy.mean()
    var = np.sum((x - xm) ** 2, 1)
    a = np.maximum(-np.sum((x - xm) * (accuracy - ym), 1) / np.where(var > 0, var, 1.0), 0.0)
    c = ym + a * xm[:, 0]
    clipped = np.clip(c, chance, 1.0)
    refit = np.maximum(np.sum(x * (clipped[:, None] - accuracy), 1) / np.sum(x * x, 1), 0.0)
    a = np.where(clipped != c, refit, a)
    c = clipped
    return c, a, np.sum((accuracy - (c[:, None] - a[:, None] * x)) ** 2, 1)


def _fit(n: np.ndarray, accuracy: np.ndarray, chance: float) -> np.ndarray | None:
    """(c, a, b) minimising the squared error within the bounds: the linear part exactly for each
    exponent b (variable projection), b on a grid then refined by bounded scalar minimisation."""
    from scipy.optimize import minimize_scalar

    log_n = np.log(n)

    def error(b: float) -> float:
        return float(_linear_part(np.exp(-b * log_n)[None], accuracy, chance)[2][0])

    errors = _linear_part(np.exp(-B_GRID[:, None] * log_n), accuracy, chance)[2]
    i = int(np.argmin(errors))
    lo, hi = B_GRID[max(i - 1, 0)], B_GRID[min(i + 1, len(B_GRID) - 1)]
    best = minimize_scalar(error, bounds=(lo, hi), method="bounded", options={"xatol": 1e-5})
    b = float(best.x) if best.success and best.fun <= errors[i] else float(B_GRID[i])
    c, a, _ = _linear_part(np.exp(-b * log_n)[None], accuracy, chance)
    params = np.array([c[0], a[0], b])
    return params if np.isfinite(params).all() else None


@dataclass(frozen=True)
class LabelsNeeded:
    """Labels per class for a target accuracy: the estimate and its 95% bootstrap interval (``inf``:
    not reached), how far beyond the measured range that is, and whether to trust it."""

    target: float
    estimate: float
    low: float
    high: float
    extrapolation: float  # estimate / largest n measured (or smallest n / estimate below the range)
    reliable: bool
    message: str


@dataclass(frozen=True)
class CurveFit:
    """A fitted curve: ``params`` (c, a, b), the bootstrap refits (B, 3), the data range and points."""

    params: tuple[float, float, float]
    bootstrap: np.ndarray
    n_min: float
    n_max: float
    points: int
    sizes: int
    residual_std: float

    @property
    def ceiling(self) -> float:
        return self.params[0]

    def predict(self, n: np.ndarray | float) -> np.ndarray:
        return _curve(np.asarray(n, dtype=float), *self.params)

    def band(self, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pointwise 95% bootstrap interval of the curve at ``n``."""
        curves = np.array([_curve(np.asarray(n, dtype=float), *p) for p in self.bootstrap])
        tail = 100 * (1 - CONFIDENCE) / 2
        return np.percentile(curves, tail, axis=0), np.percentile(curves, 100 - tail, axis=0)

    def _needed(self, params, target: float) -> float:
        c, a, b = params
        if target >= c:
            return math.inf
        if a == 0:
            return 1.0
        return float((a / (c - target)) ** (1 / b))

    def labels_needed(self, target: float) -> LabelsNeeded:
        """Labels per class for test accuracy ``target`` (a fraction)."""
        if not 0 < target < 1:
            raise TransferlabError(
                f"target accuracy {target!r} is invalid; give a fraction in (0, 1), e.g. 0.9"
            )
        estimate = self._needed(self.params, target)
        draws = np.array([self._needed(p, target) for p in self.bootstrap])
        tail = 100 * (1 - CONFIDENCE) / 2
        # No interpolation between order statistics: some draws may be inf (target never reached).
        low, high = (float(np.percentile(draws, q, method="inverted_cdf")) for q in (tail, 100 - tail))
        if math.isinf(estimate):
            return LabelsNeeded(
                target,
                estimate,
                low,
                high,
                math.inf,
                False,
                f"{100 * target:g}% is above the fitted ceiling {100 * self.ceiling:.1f}%: more labels "
                "of this kind are not predicted to reach it",
            )
        if estimate > self.n_max:
            extrapolation = estimate / self.n_max
        elif estimate < self.n_min:
            extrapolation = self.n_min / estimate
        else:
            extrapolation = 1.0
        reliable = extrapolation <= EXTRAPOLATION_LIMIT and math.isfinite(high)
        interval = f"95% interval {low:,.0f}-{'not reached' if math.isinf(high) else f'{high:,.0f}'}"
        message = f"about {estimate:,.0f} labels per class for {100 * target:g}% ({interval})"
        if extrapolation > EXTRAPOLATION_LIMIT:
            message += (
                f"; UNRELIABLE: {extrapolation:.1f}x beyond the measured {self.n_min:g}-{self.n_max:g} per "
                f"class (trusted up to {EXTRAPOLATION_LIMIT:g}x)"
            )
        elif math.isinf(high):
            message += "; UNRELIABLE: some bootstrap refits never reach it"
        return LabelsNeeded(target, estimate, low, high, extrapolation, reliable, message)


def fit_curve(
    per_class: np.ndarray,
    accuracy: np.ndarray,
    chance: float = 0.0,
    *,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> CurveFit:
    """Fit accuracy (fractions, one per run) against labelled images per class (one per run). Needs at
    least 3 distinct sizes (the model has 3 parameters)."""
    n, acc = np.asarray(per_class, dtype=float), np.asarray(accuracy, dtype=float)
    if n.shape != acc.shape or n.ndim != 1 or (n <= 0).any() or not np.isfinite(acc).all():
        raise TransferlabError(
            "a learning curve needs matching 1-D arrays of positive sizes and finite accuracies"
        )
    sizes = np.unique(n)
    if len(sizes) < 3:
        raise TransferlabError(
            f"a learning curve has 3 parameters, so it needs runs at >= 3 training sizes; got "
            f"{len(sizes)} ({', '.join(f'{s:g}' for s in sizes)} per class)"
        )
    params = _fit(n, acc, chance)
    if params is None:
        raise TransferlabError("the learning-curve fit did not converge on these points")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(n == s) for s in sizes]
    refits = []
    for _ in range(bootstrap):
        index = np.concatenate([rng.choice(g, size=len(g), replace=True) for g in groups])
        refit = _fit(n[index], acc[index], chance)
        if refit is not None:
            refits.append(refit)
    residual = acc - _curve(n, *params)
    return CurveFit(
        tuple(float(p) for p in params),
        np.array(refits).reshape(-1, 3),
        float(sizes.min()),
        float(sizes.max()),
        len(n),
        len(sizes),
        float(np.sqrt(np.mean(residual**2))),
    )
