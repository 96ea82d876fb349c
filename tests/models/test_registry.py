"""The backbone registry: names as data, close-match errors, duplicate names, listing facts."""

from __future__ import annotations

import pytest
import torch

from transferlab import TransferlabError, create_backbone, list_backbones
from transferlab.models.backbone import WeightSpec
from transferlab.models.registry import get_backbone_entry, register_backbone
from transferlab.models.small_cnns import CIFAR_SPEC


def test_names_cover_the_studies_and_filter_by_glob_and_pretrained():
    names = list_backbones()
    assert {"cifar_cnn", "cifar_cnn_gap", "shallow_cnn", "alexnet64", "efficientnet_lite0.in1k"} <= set(names)
    for arch in ("vgg16", "mobilenet_v2", "resnet18", "alexnet"):
        assert {f"{arch}.tv_in1k", f"{arch}.scratch"} <= set(names)
    assert list_backbones("resnet*") == ["resnet18.scratch", "resnet18.tv_in1k"]
    pretrained = list_backbones(pretrained=True)
    assert "efficientnet_lite0.in1k" in pretrained and "cifar_cnn" not in pretrained
    assert "cifar_cnn" in list_backbones(pretrained=False) and names == sorted(names)


def test_unknown_name_lists_close_matches():
    with pytest.raises(
        TransferlabError, match=r"unknown backbone 'vgg16'.*did you mean: vgg16\.tv_in1k, vgg16\.scratch\?"
    ):
        create_backbone("vgg16")
    with pytest.raises(TransferlabError, match="did you mean: cifar_cnn"):
        create_backbone("cifar-cnn", pretrained=False)


def test_registering_a_name_twice_raises():
    with pytest.raises(TransferlabError, match="'cifar_cnn' is already registered"):
        register_backbone("cifar_cnn", CIFAR_SPEC)(lambda state_dict: None)


@pytest.mark.parametrize(
    ("name", "parameters", "units"),
    [
        ("vgg16.tv_in1k", 138_357_544, 13),
        ("alexnet.scratch", 61_100_840, 8),
        ("resnet18.tv_in1k", 11_689_512, 5),
        ("mobilenet_v2.scratch", 3_504_872, 19),
        ("efficientnet_lite0.in1k", 4_652_008, 9),
        ("alexnet64", None, 8),
        ("cifar_cnn", None, 10),
    ],
)
def test_describe_counts_parameters_and_units_without_allocating(name, parameters, units):
    facts = get_backbone_entry(name).describe()
    if parameters is not None:  # torchvision's own published counts
        assert facts["parameters"] == parameters
    assert len(facts["units"]) == units
    assert facts["weights"] in ("present", "absent", "none")
    assert isinstance(facts["license"], str) and facts["input_size"] > 0


def test_weight_spec_exposes_input_size_and_normalisation():
    spec = get_backbone_entry("efficientnet_lite0.in1k").spec
    assert isinstance(spec, WeightSpec) and spec.pretrained and spec.license == "Apache-2.0"
    assert spec.input_size == 224 and spec.mean == pytest.approx((127 / 255,) * 3)
    assert get_backbone_entry("vgg16.tv_in1k").spec.sha256 == "397923af"


def test_num_classes_replaces_the_classifier():
    backbone = create_backbone("cifar_cnn_gap", pretrained=False, num_classes=3)
    assert backbone.num_classes == 3 and backbone(torch.zeros(2, 3, 32, 32)).shape == (2, 3)
    with pytest.raises(TransferlabError, match="num_classes must be a positive integer, got 0"):
        create_backbone("cifar_cnn_gap", pretrained=False, num_classes=0)
