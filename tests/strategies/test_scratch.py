"""``scratch`` and ``augment``: above chance on real digits, identical metrics for the same seed,
different ones for another seed, and augmentation actually changing training."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab.strategies import run


def metrics(result) -> tuple:
    history = [{k: v for k, v in r.items() if k != "seconds"} for r in result.history]
    return result.test_accuracy, result.test_loss, result.val_accuracy, result.indices_hash, history


@pytest.fixture(scope="module")
def scratch(digits, small_spec):
    return run(small_spec("scratch", per_class=20, epochs=5), digits)


def test_scratch_beats_chance_and_is_deterministic(scratch, digits, small_spec):
    assert scratch.ok and scratch.test_accuracy > 0.5  # 10 classes: chance is 0.1
    assert metrics(run(small_spec("scratch", per_class=20, epochs=5), digits)) == metrics(scratch)
    assert scratch.n_train == 200 and scratch.n_test == 200 and scratch.spec["backbone"] == "cifar_cnn"
    other = run(small_spec("scratch", per_class=20, epochs=1, seed=1), digits)
    assert other.indices_hash != scratch.indices_hash


def test_augment_beats_chance_and_differs_from_scratch(scratch, digits, small_spec):
    augmented = run(small_spec("augment", per_class=20, epochs=5), digits)
    assert augmented.ok and augmented.test_accuracy > 0.4
    assert augmented.spec["augment"] == "mirror,noise"
    assert augmented.indices_hash == scratch.indices_hash  # same images, different training
    assert augmented.history[0]["train_loss"] != scratch.history[0]["train_loss"]


def test_the_test_confusion_counts_every_test_image_once(scratch):
    confusion = scratch.test_confusion
    counts = np.asarray(confusion["counts"])
    assert confusion["classes"] == [str(c) for c in range(10)] and counts.shape == (10, 10)
    assert counts.sum() == scratch.n_test  # rows: true class; every test image once
    assert counts.sum(axis=1).tolist() == [scratch.n_test // 10] * 10  # test_per_class images of each class
    assert np.trace(counts) / counts.sum() == pytest.approx(scratch.test_accuracy)
