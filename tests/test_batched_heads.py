"""Batched head training (models/batched_heads.py) gives each configuration its single run: the same
final weights for one configuration, the same accuracies for a grid, the same failures and errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone

from transferlab.data.splits import make_task
from transferlab.errors import TransferlabError
from transferlab.models.batched_heads import fit_heads
from transferlab.models.heads import make_head
from transferlab.train import TrainingFailed


@pytest.fixture(scope="module")
def digit_sets(digits):
    """Real digits pixels (64 features, scaled to [0, 1]) at two nested sizes with a fixed val/test."""
    features = digits.images.reshape(len(digits), -1).astype(np.float32) / 255

    def part(task, name):
        index = getattr(task, name)
        return features[index], task.labels(digits, name)

    tasks = {size: make_task(digits, None, size=size, val_size=0.2, seed=0) for size in (1.0, 0.3)}
    return {
        size: {name: part(task, name) for name in ("train", "val", "test")} for size, task in tasks.items()
    }


def _weights(head) -> list[torch.Tensor]:
    return [p.detach().clone() for p in head.module_.parameters()]


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_a_configuration_in_a_pass_ends_with_its_single_runs_weights(digit_sets, optimizer):
    sets = digit_sets[1.0]
    heads = [
        make_head(
            "fc2", activation="sigmoid", lr=1e-2, weight_decay=1e-3, epochs=4, optimizer=optimizer, seed=3
        ),
        make_head("fc3", activation="elu", lr=3e-3, epochs=4, optimizer=optimizer, seed=3),
    ]
    singles = [clone(h).fit(*sets["train"], eval_set=sets["val"]) for h in heads]
    errors = fit_heads(heads, [sets["train"]] * 2, [sets["val"]] * 2, min_pass=1)
    assert errors == [None, None] and [h.batched_with_ for h in heads] == [2, 2]
    for batched, single in zip(heads, singles, strict=True):
        for b, s in zip(_weights(batched), _weights(single), strict=True):
            torch.testing.assert_close(b, s, rtol=0, atol=2e-5)
        assert [r["epoch"] for r in batched.history_] == [1, 2, 3, 4] and batched.best_epoch_ == 4
        for rb, rs in zip(batched.history_, single.history_, strict=True):
            assert rb["val_loss"] == pytest.approx(rs["val_loss"], rel=1e-4)
            assert rb["train_accuracy"] == pytest.approx(rs["train_accuracy"], abs=1 / len(sets["train"][1]))
        assert batched.score(*sets["test"]) == single.score(*sets["test"])


def test_a_grid_gives_the_single_runs_accuracies(digit_sets):
    """3 heads x 2 activations x 2 lrs x 2 sizes (+ a gap head, early stopping, fewer epochs), one pass
    per size: test accuracies agree with the single runs within 1% (float32 summation order)."""
    heads, trains, vals, sizes = [], [], [], []
    for size, sets in digit_sets.items():
        for name in ("fc1", "fc2", "fc3"):
            for activation in ("sigmoid", "elu"):
                for lr in (1e-2, 1e-3):
                    heads.append(make_head(name, activation=activation, lr=lr, epochs=5, seed=1))
        heads += [
            make_head("gap", lr=1e-2, epochs=5, seed=1),
            make_head("fc2", lr=1e-2, epochs=5, patience=2, seed=1),
            make_head("fc1", lr=1e-2, epochs=3, seed=1),
        ]
        count = len(heads) - len(trains)
        trains += [sets["train"]] * count
        vals += [sets["val"]] * count
        sizes += [size] * count
    singles = [clone(h).fit(t[0], t[1], eval_set=v) for h, t, v in zip(heads, trains, vals, strict=True)]
    assert fit_heads(heads, trains, vals) == [None] * len(heads)
    assert {h.batched_with_ for h in heads} == {15}
    differences = []
    for batched, single, size in zip(heads, singles, sizes, strict=True):
        test = digit_sets[size]["test"]
        assert (batched.best_epoch_, len(batched.history_)) == (single.best_epoch_, len(single.history_))
        differences.append(abs(batched.score(*test) - single.score(*test)))
    assert max(differences) <= 0.01, differences
    assert np.mean([h.score(*digit_sets[1.0]["test"]) for h in heads[:15]]) > 0.5  # they did learn


def test_a_diverging_configuration_fails_alone_with_the_single_message(digit_sets):
    sets = digit_sets[0.3]
    heads = [
        make_head("fc1", activation="relu", lr=1e9, optimizer="sgd", epochs=3, seed=0),
        make_head("fc1", activation="relu", lr=1e-2, optimizer="sgd", epochs=3, seed=0),
    ]
    with pytest.raises(TrainingFailed) as single:
        clone(heads[0]).fit(*sets["train"], eval_set=sets["val"])
    errors = fit_heads(heads, [sets["train"]] * 2, [sets["val"]] * 2)
    assert isinstance(errors[0], TrainingFailed) and errors[0].reason == single.value.reason
    assert len(errors[0].history) == len(single.value.history)
    healthy = clone(heads[1]).fit(*sets["train"], eval_set=sets["val"])
    assert errors[1] is None and heads[1].score(*sets["test"]) == pytest.approx(
        healthy.score(*sets["test"]), abs=0.01
    )


def test_unbatchable_heads_and_bad_settings_take_the_single_path(digit_sets):
    sets = digit_sets[0.3]
    dropout = make_head("fc2", dropout=0.3, lr=1e-2, epochs=3, seed=2)
    plain = make_head("fc2", lr=1e-2, epochs=3, seed=2)
    no_val = make_head("fc1", lr=1e-2, epochs=3, patience=1, seed=2)
    errors = fit_heads([dropout, plain, no_val], [sets["train"]] * 3, [sets["val"], sets["val"], None])
    assert errors[:2] == [None, None] and (dropout.batched_with_, plain.batched_with_) == (1, 1)
    single = clone(dropout).fit(*sets["train"], eval_set=sets["val"])
    assert dropout.score(*sets["test"]) == single.score(*sets["test"])  # dropout > 0: the single path itself
    assert isinstance(errors[2], TransferlabError) and "patience" in str(errors[2])
    with pytest.raises(TransferlabError, match="one train set and one eval set per head"):
        fit_heads([plain], [], [])


def test_results_do_not_depend_on_the_number_of_workers(digit_sets):
    """Stacks train as independent jobs: two workers or three, every weight and history is the same."""
    sets = digit_sets[0.3]

    def grid():
        return [
            make_head(name, activation=activation, lr=lr, epochs=3, seed=4)
            for name in ("fc1", "fc2")
            for activation in ("sigmoid", "elu")
            for lr in (1e-2, 1e-3)
        ]

    serial, parallel = grid(), grid()
    # workers=1 runs in the calling thread with its torch threads, whose matmul splits may round differently;
    # any number of single-threaded workers gives the same bits.
    assert fit_heads(serial, [sets["train"]] * 8, [sets["val"]] * 8, workers=2) == [None] * 8
    assert fit_heads(parallel, [sets["train"]] * 8, [sets["val"]] * 8, workers=3) == [None] * 8
    for one, other in zip(serial, parallel, strict=True):
        for a, b in zip(_weights(one), _weights(other), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)

        def untimed(history):
            return [{k: v for k, v in record.items() if k != "seconds"} for record in history]

        assert untimed(one.history_) == untimed(other.history_)
