"""transferlab.siamese: balanced seeded pairs, one-shot tasks that are one-shot, a twin network that is
symmetric by construction and learns same/different, the Wilson interval, the 1-NN baseline, bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.siamese import (
    SiameseNet,
    accuracy_metrics,
    embeddings,
    nearest_neighbour_correct,
    one_shot_correct,
    sample_pairs,
    sample_tasks,
    task_scores,
    wilson_interval,
)
from transferlab.train import TrainConfig, seeded, train

LABELS = np.repeat(np.arange(5), [3, 4, 5, 6, 7])  # 5 classes, 3..7 images each


def test_pairs_are_balanced_valid_and_seeded():
    pairs, same = sample_pairs(LABELS, 101, np.random.default_rng(0))
    assert pairs.shape == (101, 2) and same.shape == (101,) and same.sum() == 51  # ceil(101 / 2) same
    a, b = LABELS[pairs[:, 0]], LABELS[pairs[:, 1]]
    assert np.array_equal(a == b, same == 1)
    assert not np.any(pairs[:, 0] == pairs[:, 1])  # a same pair is two distinct images
    again, _ = sample_pairs(LABELS, 101, np.random.default_rng(0))
    other, _ = sample_pairs(LABELS, 101, np.random.default_rng(1))
    assert np.array_equal(pairs, again) and not np.array_equal(pairs, other)
    assert 0.2 < same[:50].mean() < 0.8  # shuffled, not all same pairs first


def test_tasks_have_one_match_among_distinct_classes():
    tasks = sample_tasks(LABELS, 4, 200, np.random.default_rng(3))
    assert tasks.candidates.shape == (200, 4) and len(tasks) == 200 and tasks.n_way == 4
    candidate_classes = LABELS[tasks.candidates]
    assert all(len(set(row)) == 4 for row in candidate_classes)  # N distinct classes
    rows = np.arange(200)
    assert np.array_equal(candidate_classes[rows, tasks.answer], LABELS[tasks.query])
    assert (np.sum(candidate_classes == LABELS[tasks.query][:, None], axis=1) == 1).all()  # exactly one match
    assert not np.any(tasks.candidates[rows, tasks.answer] == tasks.query)  # the match is another image
    assert (
        set(np.bincount(tasks.answer, minlength=4)) and np.bincount(tasks.answer).min() > 25
    )  # position random


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: sample_tasks(LABELS, 6, 10, np.random.default_rng(0)),
            "n_way=6 is larger than the 5 test classes",
        ),
        (
            lambda: sample_tasks(LABELS, 1, 10, np.random.default_rng(0)),
            "n_way=1 is invalid; a one-shot task needs N >= 2",
        ),
        (
            lambda: sample_pairs(LABELS, 0, np.random.default_rng(0)),
            r"pairs=0 is invalid; give a whole number >= 1",
        ),
        (lambda: sample_tasks(LABELS, 2, 0, np.random.default_rng(0)), r"tasks=0 is invalid"),
        (
            lambda: sample_pairs(np.array([0, 0, 1]), 4, np.random.default_rng(0), ["shoe", "bag"]),
            r"class 'bag' has 1 image\(s\); Siamese pairs and one-shot tasks need at least 2",
        ),
        (
            lambda: sample_pairs(np.array([0, 0, 0]), 4, np.random.default_rng(0)),
            "pairs need at least 2 classes",
        ),
    ],
)
def test_bad_input_is_refused(call, message):
    with pytest.raises(TransferlabError, match=message):
        call()


def test_twins_are_symmetric_by_construction():
    with seeded(0):
        net = SiameseNet(in_features=12, hidden=32)
        a, b = torch.randn(9, 12), torch.randn(9, 12)
    forward = net(torch.stack([a, b], 1))
    backward = net(torch.stack([b, a], 1))
    assert forward.shape == (9, 2) and torch.equal(forward, backward)  # bit-identical, not just close
    assert torch.equal(forward[:, 0], torch.zeros(9))  # logits (0, z): softmax[1] = sigmoid(z) = P(same)
    assert torch.allclose(forward.softmax(1)[:, 1], torch.sigmoid(forward[:, 1]))
    with seeded(0):
        koch = SiameseNet(in_features=12, hidden=32, head="fc")
    assert torch.equal(koch(torch.stack([a, b], 1)), koch(torch.stack([b, a], 1)))
    with pytest.raises(TransferlabError, match="siamese head 'cosine' is unknown; valid: l1, fc"):
        SiameseNet(12, 32, head="cosine")


def _gaussian_classes(seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (8, 16))
    labels = np.repeat(np.arange(8), 40)
    return torch.from_numpy((centres[labels] + rng.normal(0, 1, (320, 16))).astype(np.float32)), labels


@pytest.fixture(scope="module")
def trained_on_four_classes():
    """head -> (its 4-way one-shot accuracy on 4 unseen classes, the final training pair accuracy), for
    twins trained on pairs of 4 of 8 Gaussian classes (16 dims) and tested on the other 4 (chance 0.25)."""
    x, labels = _gaussian_classes()
    seen, unseen = labels < 4, labels >= 4
    pairs, same = sample_pairs(labels[seen], 1000, np.random.default_rng(1))
    table = x[torch.from_numpy(np.flatnonzero(seen))]
    tasks = sample_tasks(labels[unseen], 4, 200, np.random.default_rng(2))
    out = {}
    for head in ("l1", "fc"):
        with seeded(0):
            net = SiameseNet(16, 32, head=head).centre_bias(table[torch.from_numpy(pairs[:256])])
        outcome = train(
            net,
            torch.from_numpy(pairs),
            torch.from_numpy(same),
            TrainConfig(epochs=8, seed=0),
            transform=lambda batch, training, generator: table[batch],
        )
        h = embeddings(net, x[torch.from_numpy(np.flatnonzero(unseen))])
        out[head] = (
            one_shot_correct(task_scores(net, h, tasks), tasks).mean(),
            outcome.history[-1]["train_accuracy"],
        )
    out["1-NN"] = (nearest_neighbour_correct(x[unseen].numpy(), tasks).mean(), None)
    return out


def test_twins_learn_same_or_different_and_solve_unseen_one_shot_tasks(trained_on_four_classes):
    accuracy, train_accuracy = trained_on_four_classes["l1"]
    assert train_accuracy > 0.9 and accuracy > 0.9, trained_on_four_classes
    assert trained_on_four_classes["1-NN"][0] > 0.9  # the tasks are easy for a metric


def test_an_unconstrained_output_layer_forgets_the_metric(trained_on_four_classes):
    """The measurement behind head="l1" being the default (SiameseNet's docstring): Koch's unconstrained
    layer fits the training pairs as well but answers the unseen classes' tasks far worse."""
    accuracy, train_accuracy = trained_on_four_classes["fc"]
    assert train_accuracy > 0.9 and accuracy < trained_on_four_classes["l1"][0] - 0.2, trained_on_four_classes


def test_nearest_neighbour_picks_the_closest_candidate():
    vectors = np.array([[0.0], [0.9], [5.0], [1.2], [-3.0], [-2.5]])
    tasks = sample_tasks(np.array([0, 0, 1, 1, 2, 2]), 3, 30, np.random.default_rng(0))
    x = vectors[:, 0]
    closest = np.abs(x[tasks.candidates] - x[tasks.query][:, None]).argmin(1)
    correct = nearest_neighbour_correct(vectors, tasks)
    assert np.array_equal(correct, closest == tasks.answer) and 0 < correct.sum() < 30


def test_wilson_interval_matches_the_formula():
    low, high = wilson_interval(160, 320)
    assert low == pytest.approx(0.4456, abs=1e-4) and high == pytest.approx(0.5544, abs=1e-4)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == pytest.approx(1.0)
    assert 0.0 < wilson_interval(0, 10)[1] < 0.35  # no degenerate [0, 0] at zero successes
    metrics = accuracy_metrics("one_shot", np.array([True] * 3 + [False]))
    assert (
        metrics["one_shot_accuracy"] == 0.75
        and metrics["one_shot_ci_low"] < 0.75 < metrics["one_shot_ci_high"]
    )
    with pytest.raises(TransferlabError, match="at least one task"):
        wilson_interval(0, 0)


def test_support_scores_at_one_shot_are_the_task_scores():
    """K = 1 tasks viewed as few-shot tasks score exactly as the one-shot scorer; at K = 3 the score of a
    class is the mean logit over its supports."""
    from transferlab.fewshot import FewShotTasks, sample_fewshot_tasks
    from transferlab.siamese import support_scores

    x, labels = _gaussian_classes(1)
    with seeded(0):
        net = SiameseNet(16, 8)
    h = embeddings(net, x)
    tasks = sample_tasks(labels, 4, 30, np.random.default_rng(0))
    assert torch.equal(support_scores(net, h, FewShotTasks.from_one_shot(tasks)), task_scores(net, h, tasks))
    shots = sample_fewshot_tasks(labels, 3, 3, 10, np.random.default_rng(1))
    first = torch.stack(
        [net.similarity(h[[shots.query[0]] * 3], h[shots.support[0, n]]).mean() for n in range(3)]
    )
    assert torch.allclose(support_scores(net, h, shots)[0], first)
