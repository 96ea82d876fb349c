"""Dataset similarity (closed forms and the size-similarity placement), the recommendation per quadrant,
and the learning-curve model (recovering a known curve, labels needed, the extrapolation verdict)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlab.advise.advisor import CandidateAdvice, recommend
from transferlab.advise.curves import EXTRAPOLATION_LIMIT, fit_curve
from transferlab.advise.similarity import (
    SIMILAR_DOMAIN_ACCURACY,
    SMALL_PER_CLASS,
    domain_accuracy,
    frechet_distance,
    mmd2,
    place,
)
from transferlab.errors import TransferlabError
from transferlab.runs import RunSpec


def test_frechet_distance_closed_form():
    rng = np.random.default_rng(0)
    a = rng.normal(0.0, 1.0, size=(20000, 1))
    b = rng.normal(2.0, 3.0, size=(20000, 1))
    # 1-D Gaussians: (mu1 - mu2)^2 + (sigma1 - sigma2)^2 = 4 + 4.
    assert frechet_distance(a, b) == pytest.approx(8.0, rel=0.03)
    x = rng.normal(size=(500, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)


def test_mmd_and_domain_accuracy_separate_shifted_from_identical():
    rng = np.random.default_rng(1)
    same_a, same_b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    shifted = rng.normal(size=(300, 8)) + 3.0
    assert abs(mmd2(same_a, same_b)) < 0.01 < 0.5 < mmd2(same_a, shifted)
    assert domain_accuracy(same_a, same_b) < 0.62  # chance is 0.5
    assert domain_accuracy(same_a, shifted) > 0.98
    with pytest.raises(TransferlabError, match="same D"):
        mmd2(same_a, same_b[:, :3])


def test_placement_thresholds_and_quadrants():
    assert SMALL_PER_CLASS == 1000 and SIMILAR_DOMAIN_ACCURACY == 0.75
    assert place(54, 0.70).quadrant == 4 and place(54, 0.99).quadrant == 3
    assert place(5000, 0.70).quadrant == 2 and place(5000, 0.99).quadrant == 1
    assert place(999, 0.75).quadrant == 4 and place(1000, 0.7501).quadrant == 1  # the stated boundaries
    unknown = place(10, None)
    assert unknown.quadrant == 3 and unknown.similar is None and "no source images" in unknown.label
    assert (
        "0.99 > 0.75" in place(54, 0.99).reason
        and "54 labelled images per class is below 1000" in place(54, 0.99).reason
    )


def _candidate(name: str, kind: str, per_class: float, domain: float | None) -> CandidateAdvice:
    return CandidateAdvice(name, kind, {"logme": 0.0}, None, place(per_class, domain), "", 16, 0.0)


@pytest.mark.parametrize(
    ("per_class", "domain", "kind", "expected"),
    [
        (50, 0.6, "pretrained", {"strategy": "extract", "head": "logreg"}),
        (50, 0.95, "pretrained", {"strategy": "finetune", "frozen": 4, "augment": "mirror,noise"}),
        (5000, 0.6, "pretrained", {"strategy": "finetune", "frozen": 6}),
        (5000, 0.95, "pretrained", {"strategy": "finetune", "frozen": 0}),
        (50, 0.95, "source", {"strategy": "snt", "transfer": 9, "frozen": 4}),
        (50, None, "random", {"strategy": "augment"}),
    ],
)
def test_recommendation_per_quadrant_is_a_valid_run(per_class, domain, kind, expected):
    name = {
        "pretrained": "efficientnet_lite0.in1k",
        "source": "cifar_cnn@source",
        "random": "cifar_cnn@random",
    }[kind]
    units = [f"u{i}" for i in range(9)]
    rec = recommend(_candidate(name, kind, per_class, domain), units, 64)
    assert expected.items() <= rec["run"].items()
    RunSpec(dataset="digits", **rec["run"]).resolved()  # every recommendation is a run that validates
    assert rec["why"]


def test_learning_curve_recovers_a_known_curve_and_answers_labels_needed():
    rng = np.random.default_rng(2)
    c, a, b = 0.93, 0.9, 0.5
    sizes = np.repeat([5, 10, 20, 50, 100, 200], 3).astype(float)
    accuracy = c - a * sizes**-b + rng.normal(0, 0.003, size=len(sizes))
    fit = fit_curve(sizes, accuracy, chance=0.1, bootstrap=100)
    assert fit.params == pytest.approx((c, a, b), rel=0.08)
    truth = (a / (c - 0.85)) ** (1 / b)  # 126.6 per class: inside the measured range
    answer = fit.labels_needed(0.85)
    assert answer.low <= truth <= answer.high and answer.reliable and answer.extrapolation == 1.0
    low, high = fit.band(np.array([5.0, 200.0]))
    assert (low <= fit.predict(np.array([5.0, 200.0])) + 1e-9).all() and (high >= low).all()
    far = fit.labels_needed(0.92)  # (0.9 / 0.01)^2 = 8,100 per class: 40x beyond 200
    assert not far.reliable and far.extrapolation > EXTRAPOLATION_LIMIT and "UNRELIABLE" in far.message
    above = fit.labels_needed(0.99)
    assert math.isinf(above.estimate) and not above.reliable and "ceiling" in above.message


def test_learning_curve_bad_input():
    with pytest.raises(
        TransferlabError, match=r"needs runs at >= 3 training sizes; got 2 \(5, 10 per class\)"
    ):
        fit_curve(np.array([5.0, 5.0, 10.0]), np.array([0.5, 0.52, 0.6]))
    fit = fit_curve(np.array([5.0, 10.0, 20.0, 40.0]), np.array([0.5, 0.6, 0.66, 0.7]), bootstrap=10)
    with pytest.raises(TransferlabError, match="target accuracy 90 is invalid"):
        fit.labels_needed(90)
