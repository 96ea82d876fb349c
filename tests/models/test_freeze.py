"""freeze(k): units 1..k leave the optimizer and their BatchNorm keeps its running statistics."""

from __future__ import annotations

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from transferlab import TransferlabError, create_backbone


def _bn_stats(module):
    return [
        (m.running_mean.clone(), m.running_var.clone()) for m in module.modules() if isinstance(m, _BatchNorm)
    ]


def _train_step(backbone, size):
    torch.manual_seed(0)
    optimizer = torch.optim.SGD(backbone.trainable_parameters(), lr=0.1)
    backbone.train()
    loss = torch.nn.functional.cross_entropy(backbone(torch.randn(8, 3, size, size)), torch.arange(8) % 3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


@pytest.mark.parametrize(("name", "k", "size"), [("cifar_cnn", 4, 32), ("mobilenet_v2.scratch", 6, 32)])
def test_frozen_units_keep_weights_and_bn_statistics(name, k, size):
    backbone = create_backbone(name, pretrained=False, num_classes=3).freeze(k)
    units = dict(backbone.named_units())
    frozen, trainable = list(units)[:k], list(units)[k:]
    frozen_ids = {id(p) for n in frozen for p in units[n].parameters()}
    assert frozen_ids and not frozen_ids & {id(p) for p in backbone.trainable_parameters()}
    before = {n: ([p.clone() for p in units[n].parameters()], _bn_stats(units[n])) for n in units}
    _train_step(backbone, size)
    assert all(not m.training for n in frozen for m in units[n].modules() if isinstance(m, _BatchNorm))
    for n in frozen:
        params, stats = before[n]
        assert all(torch.equal(a, b) for a, b in zip(params, units[n].parameters(), strict=True))
        assert all(
            torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
            for a, b in zip(stats, _bn_stats(units[n]), strict=True)
        )
    changed_stats = [
        n
        for n in trainable
        if _bn_stats(units[n]) and not torch.equal(before[n][1][0][0], _bn_stats(units[n])[0][0])
    ]
    assert changed_stats  # unfrozen BatchNorm did learn from the batch
    assert backbone.frozen_depth == k


def test_bn_train_mode_updates_statistics_but_not_weights():
    backbone = create_backbone("cifar_cnn", pretrained=False).freeze(3, bn="train")
    conv = backbone.units["conv1_1"]
    stats, weight = _bn_stats(conv), conv[0].weight.clone()
    _train_step(backbone, 32)
    assert not torch.equal(stats[0][0], _bn_stats(conv)[0][0]) and torch.equal(weight, conv[0].weight)


def test_freeze_zero_unfreezes_and_eval_still_works():
    backbone = create_backbone("cifar_cnn_gap", pretrained=False).freeze(8)
    assert backbone.trainable_parameters() == []  # the counted output layer is unit 8
    backbone.freeze(0)
    assert len(backbone.trainable_parameters()) == len(list(backbone.parameters()))
    backbone.freeze(2).eval()
    assert not any(m.training for m in backbone.modules())


def test_reset_classifier_keeps_a_frozen_counted_classifier_frozen():
    backbone = create_backbone("alexnet64", pretrained=False).freeze(8)
    backbone.reset_classifier(5)
    assert backbone.trainable_parameters() == [] and backbone.num_classes == 5
    backbone.freeze(7).reset_classifier(2)
    assert {id(p) for p in backbone.trainable_parameters()} == {
        id(p) for p in backbone.classifier.parameters()
    }


@pytest.mark.parametrize("k", [11, -1, 2.5, True])
def test_freeze_depth_beyond_the_units_names_them(k):
    with pytest.raises(
        TransferlabError,
        match=r"freeze depth .* cifar_cnn, which has 10 freezable units \(input, conv1_1.*valid: 0\.\.10",
    ):
        create_backbone("cifar_cnn", pretrained=False).freeze(k)
    with pytest.raises(TransferlabError, match="bn 'frozen' is unknown; valid: eval, train"):
        create_backbone("cifar_cnn", pretrained=False).freeze(1, bn="frozen")
