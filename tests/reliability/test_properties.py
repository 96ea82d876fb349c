"""Hypothesis properties that tests/data/test_splits.py and tests/study/test_spec.py do not cover yet.

Splits (on ImageSets whose classes are interleaved at random positions, with and without an official
test split): random class halves are disjoint, cover every class and are seeded; a task on any subset of
classes holds only those classes, with disjoint parts and labels re-indexed in the given order; a class
draws the same train/validation/test images whatever other classes share the task; the test set never
moves with the seed or the size; count holdouts are exact.

Grid expansion: the runs are the union of each [[runs]] block's own product (an axis set in one block
never multiplies another, identical runs from two blocks are one run), run ids are unique, and neither
the order of axis values nor of blocks changes the grid.
"""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlab.data.imageset import ImageSet
from transferlab.data.splits import class_split, make_task
from transferlab.study.spec import parse_study

PARTS = ("train", "val", "test")


@st.composite
def image_sets(draw, min_classes: int = 2, max_classes: int = 8):
    """An ImageSet of 2x2 grey images: 15..60 training images per class, an official test split of 3..9
    per class or none, rows in a random order (so that no property leans on sorted labels)."""
    n_classes = draw(st.integers(min_classes, max_classes))
    train = draw(st.lists(st.integers(15, 60), min_size=n_classes, max_size=n_classes))
    official_test = draw(st.booleans())
    test = (
        draw(st.lists(st.integers(3, 9), min_size=n_classes, max_size=n_classes))
        if official_test
        else [0] * n_classes
    )
    labels = np.concatenate(
        [np.full(n, c) for c, n in enumerate(train)] + [np.full(n, c) for c, n in enumerate(test)]
    )
    split = np.array(["train"] * sum(train) + ["test"] * sum(test))
    order = np.random.default_rng(draw(st.integers(0, 2**16))).permutation(len(labels))
    images = np.zeros((len(labels), 2, 2, 1), np.uint8)
    return ImageSet(
        images, labels[order], [f"c{c}" for c in range(n_classes)], split[order], name="synthetic"
    )


def of_class(ds: ImageSet, task, part: str, c: int) -> set[int]:
    indices = getattr(task, part)
    return set(indices[ds.labels[indices] == c].tolist())


@settings(max_examples=40, deadline=None)
@given(st.integers(4, 40), st.integers(0, 10_000))
def test_random_halves_are_disjoint_cover_every_class_and_are_seeded(n_classes, seed):
    ds = ImageSet(
        np.zeros((n_classes, 1, 1, 1), np.uint8),
        np.arange(n_classes),
        [f"c{c}" for c in range(n_classes)],
        np.array(["train"] * n_classes),
        name="classes",
    )
    halves = class_split(ds, seed=seed)
    assert not set(halves.source) & set(halves.target)
    assert sorted(halves.source + halves.target) == list(range(n_classes))
    assert (len(halves.source), len(halves.target)) == (n_classes // 2, n_classes - n_classes // 2)
    assert class_split(ds, seed=seed) == halves
    assert class_split(ds, seed=seed, swap=True) == halves.swapped()


@settings(max_examples=40, deadline=None)
@given(image_sets(), st.data(), st.integers(0, 10_000), st.integers(0, 10_000))
def test_a_task_on_any_classes_is_a_restriction_of_the_whole(ds, data, seed, other_seed):
    classes = data.draw(st.lists(st.sampled_from(range(ds.num_classes)), min_size=1, unique=True), "classes")
    # the smallest class: 15 images - 3 carved for test - at most 3 for validation leaves 9 to draw from
    per_class = data.draw(st.integers(1, 9), "per_class")
    holdouts = dict(val_size=data.draw(st.sampled_from([0.1, 0.2, 2, 3]), "val_size"), seed=seed)
    side = make_task(ds, classes, per_class=per_class, **holdouts)
    whole = make_task(ds, None, per_class=per_class, **holdouts)
    parts = [set(getattr(side, part).tolist()) for part in PARTS]
    assert all(not a & b for a, b in itertools.combinations(parts, 2))  # disjoint
    for part in PARTS:
        indices = getattr(side, part)
        assert set(ds.labels[indices]) <= set(classes)
        expected = np.array([classes.index(label) for label in ds.labels[indices]], dtype=np.int64)
        np.testing.assert_array_equal(side.labels(ds, part), expected)  # re-indexed in the given order
        for c in classes:  # a class draws the same images whatever else is in the task
            assert of_class(ds, side, part, c) == of_class(ds, whole, part, c)
    assert side.counts(ds)["train"] == [per_class] * len(classes)
    # the test set moves with neither the seed nor the size; validation does not move with the size
    np.testing.assert_array_equal(
        make_task(ds, classes, size=1.0, val_size=holdouts["val_size"], seed=other_seed).test, side.test
    )
    np.testing.assert_array_equal(make_task(ds, classes, size=1.0, **holdouts).val, side.val)


@settings(max_examples=30, deadline=None)
@given(image_sets(), st.integers(1, 5), st.integers(1, 12), st.integers(0, 10_000))
def test_count_holdouts_are_exact(ds, val_count, test_cap, seed):
    task = make_task(ds, val_size=val_count, test_per_class=test_cap, seed=seed)
    counts = task.counts(ds)
    assert counts["val"] == [val_count] * ds.num_classes
    official = [int(((ds.labels == c) & (ds.split == "test")).sum()) for c in range(ds.num_classes)]
    carved = [
        int(np.floor(0.2 * ((ds.labels == c) & (ds.split == "train")).sum() + 0.5))
        for c in range(ds.num_classes)
    ]
    available = official if any(official) else carved
    assert counts["test"] == [min(test_cap, n) for n in available]


# ------------------------------------------------------------------------------------ grid expansion

FC_HEADS, OTHER_HEADS = ["fc1", "fc2", "fc3"], ["logreg", "svm"]


def toml_list(values) -> str:
    return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else repr(v) for v in values) + "]"


def subsets(values, min_size=1):
    return st.lists(st.sampled_from(values), min_size=min_size, max_size=len(values), unique=True)


@st.composite
def grids(draw):
    """(base axes, blocks of axes, the runs they must expand to as (strategy, head, activation, lr, size,
    seed)). Each block is a dict of RunSpec fields; a list is an axis."""
    sizes, seeds = draw(subsets([0.1, 0.2, 0.5, 1.0])), draw(subsets([0, 1, 7]))
    blocks, expected = [], set()
    for _ in range(draw(st.integers(1, 3))):  # extract blocks on non-fc heads; they may overlap
        heads, lrs = draw(subsets(OTHER_HEADS)), draw(subsets([1e-2, 1e-3]))
        blocks.append({"strategy": "extract", "backbone": "shallow_cnn", "head": heads, "lr": lrs})
        expected |= {("extract", h, None, lr) for h in heads for lr in lrs}
    if draw(st.booleans()):  # an fc block: its activation axis is conditional on it (logreg/svm refuse one)
        heads, activations = draw(subsets(FC_HEADS)), draw(subsets(["elu", "sigmoid", "relu"]))
        blocks.append(
            {"strategy": "extract", "backbone": "shallow_cnn", "head": heads, "activation": activations}
        )
        expected |= {("extract", h, a, 1e-3) for h in heads for a in activations}
    if draw(st.booleans()):  # scratch runs with their own lr axis, which the extract blocks never see
        lrs = draw(subsets([0.1, 0.05]))
        blocks.append({"strategy": "scratch", "backbone": "shallow_cnn", "lr": lrs})
        expected |= {("scratch", "linear", None, lr) for lr in lrs}
    runs = {(*e, size, seed) for e in expected for size in sizes for seed in seeds}
    return {"dataset": "digits", "size": sizes, "seed": seeds}, blocks, runs


def spec_text(base: dict, blocks: list[dict], reverse: bool = False) -> str:
    """The TOML of a study; ``reverse``: every axis lists its values backwards."""

    def value(v) -> str:
        return toml_list(v[::-1] if reverse else v) if isinstance(v, list) else toml_list([v])[1:-1]

    def table(fields: dict) -> str:
        return "".join(f"{key} = {value(v)}\n" for key, v in fields.items())

    return 'name = "p"\n[base]\n' + table(base) + "".join(f"\n[[runs]]\n{table(block)}" for block in blocks)


@settings(max_examples=40, deadline=None)
@given(grids(), st.randoms(use_true_random=False))
def test_the_grid_is_the_union_of_its_blocks_own_products(grid, rng):
    base, blocks, expected = grid
    study = parse_study(spec_text(base, blocks))
    got = [(s.strategy, s.head, s.activation, s.lr, s.size, s.seed) for _, s in study.runs]
    assert len(got) == len(set(got)) and set(got) == expected  # no duplicates, nothing missing or extra
    assert len({rid for rid, _ in study.runs}) == len(got)
    # the blocks in another order, every axis backwards: the same grid, the same run ids
    again = parse_study(spec_text(base, rng.sample(blocks, len(blocks)), reverse=True))
    assert again.grid_hash == study.grid_hash and {r for r, _ in again.runs} == {r for r, _ in study.runs}


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 5), subsets(["logreg", "svm", "fc1"]))
def test_repeats_give_every_configuration_seeds_0_to_n(repeats, heads):
    text = (
        f'name = "r"\nrepeats = {repeats}\n[base]\ndataset = "digits"\n'
        f'[[runs]]\nstrategy = "extract"\nbackbone = "shallow_cnn"\nhead = {toml_list(heads)}\n'
    )
    study = parse_study(text)
    for head in heads:
        assert sorted(s.seed for _, s in study.runs if s.head == head) == list(range(repeats))
