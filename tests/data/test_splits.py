"""Splits: nested, stratified, deterministic subsets; fixed holdouts; class-disjoint sides; errors."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlab.data.imageset import ImageSet
from transferlab.data.splits import TaskSplit, class_split, make_task, resolve_classes
from transferlab.errors import TransferlabError


def synthetic(counts: list[int], test_counts: list[int] | None = None) -> ImageSet:
    """An ImageSet with ``counts[c]`` train images of class c (+ test images), 2x2 grey pixels."""
    labels = np.concatenate(
        [np.full(n, c) for c, n in enumerate(counts)]
        + [np.full(n, c) for c, n in enumerate(test_counts or [])]
    )
    split = np.array(["train"] * sum(counts) + ["test"] * sum(test_counts or []))
    images = np.zeros((len(labels), 2, 2, 1), np.uint8)
    return ImageSet(images, labels, [f"c{c}" for c in range(len(counts))], split, name="synthetic")


SETS = st.lists(st.integers(20, 120), min_size=2, max_size=5).map(
    lambda counts: synthetic(counts, [5] * len(counts))
)


@settings(max_examples=40, deadline=None)
@given(
    SETS,
    st.integers(0, 10_000),
    st.lists(st.sampled_from([1.0, 0.5, 0.2, 0.1, 0.05]), min_size=2, max_size=4),
)
def test_fraction_subsets_nested_stratified_deterministic(ds, seed, sizes):
    tasks = [make_task(ds, size=s, val_size=0.1, seed=seed) for s in sorted(set(sizes))]
    for small, big in itertools.pairwise(tasks):
        assert set(small.train) <= set(big.train)  # nested
        np.testing.assert_array_equal(small.val, big.val)  # validation independent of size
        np.testing.assert_array_equal(small.test, big.test)
    for t in tasks:
        pool = np.bincount(ds.labels[np.setdiff1d(ds.indices("train"), t.val)], minlength=ds.num_classes)
        np.testing.assert_array_equal(t.counts(ds)["train"], np.floor(t.size * pool + 0.5))  # stratified
        assert (
            not set(t.train) & set(t.val) and not set(t.train) & set(t.test) and not set(t.val) & set(t.test)
        )
        again = make_task(ds, size=t.size, val_size=0.1, seed=seed)
        assert again.indices_hash() == t.indices_hash()  # deterministic


@settings(max_examples=40, deadline=None)
@given(SETS, st.integers(0, 10_000), st.lists(st.integers(1, 17), min_size=2, max_size=4))
def test_per_class_subsets_nested_and_exact(ds, seed, counts):
    tasks = [make_task(ds, per_class=n, val_size=2, seed=seed) for n in sorted(set(counts))]
    for small, big in itertools.pairwise(tasks):
        assert set(small.train) <= set(big.train)
    for t in tasks:
        assert t.counts(ds)["train"] == [t.per_class] * ds.num_classes
        assert t.counts(ds)["val"] == [2] * ds.num_classes


def test_fraction_and_per_class_share_one_order():
    ds = synthetic([100, 100])
    by_fraction = make_task(ds, size=0.1, seed=3)  # 9 per class from a 90-image pool
    by_count = make_task(ds, per_class=20, seed=3)
    assert set(by_fraction.train) <= set(by_count.train)


def test_different_seeds_differ_and_classes_do_not_interfere():
    ds = synthetic([60, 60, 60], [5, 5, 5])
    a, b = make_task(ds, size=0.5, seed=0), make_task(ds, size=0.5, seed=1)
    assert set(a.train) != set(b.train)
    # a class draws the same images whichever other classes are in the task
    pair = make_task(ds, [0, 2], size=0.5, seed=0)
    assert set(pair.train[ds.labels[pair.train] == 2]) == set(a.train[ds.labels[a.train] == 2])


def test_carved_test_set_is_fixed_across_seeds():
    ds = synthetic([50, 50])  # no official test split
    t0, t1 = make_task(ds, size=1.0, seed=0), make_task(ds, size=1.0, seed=99)
    np.testing.assert_array_equal(t0.test, t1.test)
    assert t0.counts(ds)["test"] == [10, 10]  # 20 % of each class
    assert not set(t0.test) & set(t0.train) and not set(t1.test) & set(t1.val)


def test_test_cap_is_nested():
    ds = synthetic([30, 30], [40, 40])
    small, big = make_task(ds, test_per_class=5), make_task(ds, test_per_class=20)
    assert set(small.test) <= set(big.test) and small.counts(ds)["test"] == [5, 5]


def test_labels_reindexed_per_side_and_serialisable():
    ds = synthetic([20, 20, 20, 20], [4, 4, 4, 4])
    task = make_task(ds, [3, 1], size=1.0, seed=0)
    assert set(task.labels(ds, "train")) == {0, 1}
    np.testing.assert_array_equal(task.labels(ds, "test") == 0, ds.labels[task.test] == 3)
    back = TaskSplit.from_dict(json.loads(json.dumps(task.to_dict())))
    assert back.indices_hash() == task.indices_hash()


def test_fashion_fraction_sizes_match_the_studies(fashion):
    counts = {f: make_task(fashion, size=f, seed=0).counts(fashion)["train"] for f in (1.0, 0.1, 0.01, 0.001)}
    assert counts[1.0] == [5400] * 10 and counts[0.1] == [540] * 10
    assert counts[0.01] == [54] * 10 and counts[0.001] == [5] * 10
    assert make_task(fashion, size=0.001, seed=0).counts(fashion)["test"] == [1000] * 10


# -------------------------------------------------------------------------------- source/target


def test_class_split_by_names_and_all_but(fashion):
    cs = class_split(fashion, source="sandal,bag", target="sneaker,ankle boot")
    assert cs.source == (5, 8) and cs.target == (7, 9)
    all_but = class_split(fashion, target=["Sneaker", 9])
    assert all_but.source == (0, 1, 2, 3, 4, 5, 6, 8)
    assert (
        resolve_classes(fashion, "t-shirt") == resolve_classes(fashion, "TOP") == [0]
    )  # 'T-shirt/top' aliases
    assert cs.swapped().source == (7, 9)


def test_random_halves_are_seeded_and_disjoint():
    ds = synthetic([10] * 10)
    a, b, c = class_split(ds, seed=0), class_split(ds, seed=0), class_split(ds, seed=1)
    assert a == b and a != c
    assert len(a.source) == len(a.target) == 5 and not set(a.source) & set(a.target)
    assert class_split(ds, seed=0, swap=True) == a.swapped()


@pytest.mark.parametrize(
    ("source", "target", "message"),
    [
        ("sandal,bag", "bag,sneaker", r"overlap \(Bag\)"),
        ("sandal,handbag", None, r"class 'handbag' is unknown .*did you mean: .*Bag"),
        ("5,10", None, r"class index 10 is out of range .* valid: 0..9"),
        ("sandal", "bag", r"source side has 1 class\(es\) \(Sandal\); each side needs at least 2"),
        ("sandal,sandal", None, r"'Sandal' is listed twice"),
    ],
)
def test_class_split_errors(fashion, source, target, message):
    with pytest.raises(TransferlabError, match=message):
        class_split(fashion, source, target)


# ---------------------------------------------------------------------------------- size errors


def test_too_small_fraction_says_how_many_and_suggests_per_class():
    ds = synthetic([200, 300])  # c0: 40 test carved (20 %), 16 validation (10 %), 144 left
    with pytest.raises(
        TransferlabError, match=r"size=0.001 gives 0.14 images for class 'c0' \(144 in its.*--per-class"
    ):
        make_task(ds, size=0.001)


def test_per_class_above_available():
    ds = synthetic([50, 30])
    with pytest.raises(
        TransferlabError, match=r"per_class=40 is more than class 'c1' has: 22 .* largest possible is 22"
    ):
        make_task(ds, per_class=40)


@pytest.mark.parametrize(
    "kwargs", [{"size": 0.0}, {"size": 1.5}, {"per_class": 0}, {"val_size": 1.0}, {"val_size": -2}]
)
def test_invalid_sizes(kwargs):
    with pytest.raises(TransferlabError):
        make_task(synthetic([20, 20]), **kwargs)
