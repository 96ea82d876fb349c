"""fewshot: K-shot tasks are valid and seeded; 1-NN, nearest centroid and SimpleShot score what they
claim (SimpleShot's centring + L2 removes a shared offset and a per-image scale that fool Euclidean
rules; more shots help; on real 8x8 digits every rule is far above chance)."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.errors import TransferlabError
from transferlab.fewshot import (
    FewShotTasks,
    nearest_centroid_correct,
    nearest_neighbour_correct,
    sample_fewshot_tasks,
    simpleshot_correct,
    simpleshot_transform,
)
from transferlab.siamese import nearest_neighbour_correct as koch_nearest_neighbour
from transferlab.siamese import sample_tasks


def test_tasks_have_k_distinct_supports_per_class_and_an_unseen_query():
    labels = np.repeat(np.arange(6), 8)
    tasks = sample_fewshot_tasks(labels, 4, 3, 50, np.random.default_rng(0))
    assert tasks.support.shape == (50, 4, 3) and tasks.n_way == 4 and tasks.k_shot == 3 and len(tasks) == 50
    for t in range(50):
        classes = labels[tasks.support[t]]  # (N, K)
        assert (classes == classes[:, :1]).all() and len(set(classes[:, 0])) == 4
        assert len(set(tasks.support[t].ravel())) == 12  # no image twice in one task
        assert (
            labels[tasks.query[t]] == classes[tasks.answer[t], 0] and tasks.query[t] not in tasks.support[t]
        )
    assert len(set(tasks.answer)) == 4  # the answer's column is shuffled
    again = sample_fewshot_tasks(labels, 4, 3, 50, np.random.default_rng(0))
    assert all(np.array_equal(getattr(tasks, f), getattr(again, f)) for f in ("support", "query", "answer"))


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda labels: sample_fewshot_tasks(labels, 3, 5, 10, np.random.default_rng(0)),
            "5-shot tasks need at least 6",
        ),
        (
            lambda labels: sample_fewshot_tasks(labels, 5, 1, 10, np.random.default_rng(0)),
            "n_way=5 is larger than the 3",
        ),
        (
            lambda labels: sample_fewshot_tasks(labels, 3, 0, 10, np.random.default_rng(0)),
            "k_shot=0 is invalid",
        ),
        (
            lambda labels: simpleshot_correct(
                np.zeros((len(labels), 4)),
                sample_fewshot_tasks(labels, 2, 1, 3, np.random.default_rng(0)),
                np.zeros(3),
            ),
            "centre has 3 dimensions and the vectors 4",
        ),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(TransferlabError, match=message):
        call(np.repeat(np.arange(3), 4))


def test_one_shot_tasks_are_the_same_tasks_at_k_1():
    """The Siamese network's tasks, viewed as K = 1: 1-NN agrees with Koch's scorer, and nearest centroid
    with 1-NN (one support per class is its own centroid)."""
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(5), 10)
    vectors = rng.normal(0, 1, (50, 6)) + labels[:, None]
    one_shot = sample_tasks(labels, 5, 200, np.random.default_rng(4))
    tasks = FewShotTasks.from_one_shot(one_shot)
    koch = koch_nearest_neighbour(vectors, one_shot)
    assert np.array_equal(nearest_neighbour_correct(vectors, tasks), koch)
    assert np.array_equal(nearest_centroid_correct(vectors, tasks), koch) and 0.2 < koch.mean() < 1


def _offset_and_scale(seed: int):
    """8 Gaussian directions (16 dims) behind a shared offset (5 in every dimension), each image scaled by a
    random factor in [0.2, 4]: what pretrained features look like to a Euclidean rule (all positive,
    norms varying with contrast)."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(0, 1, (8, 16))
    labels = np.repeat(np.arange(8), 40)
    scale = rng.uniform(0.2, 4, (len(labels), 1))
    return 5.0 + scale * (directions[labels] + rng.normal(0, 0.2, (len(labels), 16))), labels


@pytest.mark.parametrize("seed", [0, 1])
def test_simpleshot_removes_the_offset_and_scale_that_fool_euclidean_rules(seed):
    vectors, labels = _offset_and_scale(seed)
    base, novel = labels < 4, labels >= 4
    centre = vectors[base].mean(0)  # the training classes' mean, never the test classes'
    tasks = sample_fewshot_tasks(labels[novel], 4, 1, 300, np.random.default_rng(1))
    simpleshot = simpleshot_correct(vectors[novel], tasks, centre).mean()
    centroid = nearest_centroid_correct(vectors[novel], tasks).mean()
    uncentred = simpleshot_correct(vectors[novel], tasks, np.zeros(16)).mean()  # L2 alone
    assert simpleshot > 0.93 and simpleshot > centroid + 0.08 and simpleshot > uncentred + 0.08, (
        simpleshot,
        centroid,
        uncentred,
    )
    unit = simpleshot_transform(vectors, centre)
    assert np.allclose(np.linalg.norm(unit, axis=1), 1.0)


def test_more_shots_help_on_noisy_clusters():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(6), 30)
    vectors = rng.normal(0, 1, (6, 10))[labels] + rng.normal(0, 1.2, (len(labels), 10))
    accuracy = {}
    for k in (1, 5):
        tasks = sample_fewshot_tasks(labels, 5, k, 400, np.random.default_rng(k))
        accuracy[k] = nearest_centroid_correct(vectors, tasks).mean()
    assert accuracy[5] > accuracy[1] + 0.1, accuracy  # measured: 0.57 -> 0.71


def test_real_digits_far_above_chance(digits):
    """8x8 digits, centre from digits 0-4, 5-way tasks on digits 5-9 (chance 0.2). Measured: 1-shot about
    0.73 for every rule, 5-shot about 0.9."""
    x = digits.images.reshape(len(digits.images), -1).astype(np.float64)
    base, novel = digits.labels < 5, digits.labels >= 5
    for k, floor in ((1, 0.6), (5, 0.8)):
        tasks = sample_fewshot_tasks(digits.labels[novel], 5, k, 300, np.random.default_rng(0))
        for correct in (
            nearest_neighbour_correct(x[novel], tasks),
            nearest_centroid_correct(x[novel], tasks),
            simpleshot_correct(x[novel], tasks, x[base].mean(0)),
        ):
            assert correct.mean() > floor, (k, correct.mean())
