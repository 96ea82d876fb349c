"""One interface on every backbone: logits, pooled features from any unit, units as the studies count them,
preprocessing carried by the weight spec. Big networks are checked on the meta device (shapes only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from transferlab import TransferlabError, create_backbone, list_backbones
from transferlab.models.registry import get_backbone_entry

STUDY_UNIT_COUNTS = {"vgg16.tv_in1k": 13, "alexnet.tv_in1k": 8, "alexnet64": 8, "cifar_cnn": 10}


def _meta(name: str):
    with torch.device("meta"):
        return get_backbone_entry(name).build(None)


# One name per architecture (the tags of an architecture share its builder).
ONE_PER_ARCH = [
    "alexnet.tv_in1k",
    "alexnet64",
    "cifar_cnn",
    "cifar_cnn_gap",
    "efficientnet_lite0.in1k",
    "efficientnet_lite1.scratch",
    "efficientnet_lite2.in1k",
    "mobilenet_v2.tv_in1k",
    "resnet18.scratch",
    "shallow_cnn",
    "vgg16.tv_in1k",
]


def test_every_architecture_is_covered_below():
    assert {n.split(".")[0] for n in list_backbones()} == {n.split(".")[0] for n in ONE_PER_ARCH}


@pytest.mark.parametrize("name", ONE_PER_ARCH)
def test_every_backbone_has_the_interface(name):
    backbone = _meta(name)
    side = backbone.spec.input_size
    x = torch.empty(2, 3, side, side, device="meta")
    assert backbone(x).shape == (2, backbone.num_classes)
    assert backbone.forward_features(x).shape == (2, backbone.num_features)
    names = list(backbone.units)
    for k in sorted({1, len(names) // 2 or 1, len(names)}):  # meta forwards are slow: three depths
        assert backbone.forward_features(x, layer=k).ndim == 2
    assert backbone.forward_features(x, layer=names[0]).shape == backbone.forward_features(x, layer=1).shape
    units = backbone.freezable_units()
    assert len(units) == len(set(units)) == STUDY_UNIT_COUNTS.get(name, len(units))


def test_vgg16_at_64_px_gives_the_studys_2048_flattened_features():
    backbone = _meta("vgg16.scratch")
    x = torch.empty(1, 3, 64, 64, device="meta")
    assert backbone.forward_features(x, pool="flatten").shape == (1, 2 * 2 * 512)
    assert backbone.forward_features(x).shape == (1, 512)
    assert backbone.freezable_units()[:3] == ["conv1_1", "conv1_2", "conv2_1"]


def test_cifar_cnn_matches_table_1():
    backbone = create_backbone("cifar_cnn", pretrained=False, num_classes=1)  # the report's sigmoid output
    counts = {name: sum(p.numel() for p in module.parameters()) for name, module in backbone.named_units()}
    # Table 1 lists conv weights; BatchNorm adds 2 x channels here (Keras also counts its 2 running stats).
    conv = {
        "conv1_1": 896,
        "conv1_2": 9248,
        "conv2_1": 18_496,
        "conv2_2": 36_928,
        "conv3_1": 73_856,
        "conv3_2": 147_584,
    }
    for name, weights in conv.items():
        channels = counts[name] - weights
        assert channels == 2 * {"1": 32, "2": 64, "3": 128}[name[4]]
    assert (counts["input"], counts["fc1"], counts["fc2"], counts["output"]) == (0, 524_544, 32_896, 129)
    assert sum(counts.values()) == 845_473  # about 845k
    assert len(backbone.freezable_units()) == 10
    x = torch.rand(4, 3, 32, 32)
    assert backbone.eval()(x).shape == (4, 1) and backbone.forward_features(x, layer="conv3_2").shape == (
        4,
        128,
    )


@pytest.mark.parametrize("name", ["cifar_cnn", "cifar_cnn_gap", "shallow_cnn", "alexnet64"])
def test_small_cnns_run_at_their_size_and_at_others(name):
    backbone = create_backbone(name, pretrained=False, num_classes=4).eval()
    for size in (backbone.spec.input_size, 48):
        images = np.random.default_rng(0).integers(0, 256, (2, 28, 28, 1), dtype=np.uint8)
        x = backbone.preprocess(images, size=None if size == backbone.spec.input_size else size)
        with torch.no_grad():
            assert backbone(x).shape == (2, 4) and backbone.forward_features(x).shape == (
                2,
                backbone.num_features,
            )


def test_layers_by_index_digit_string_and_name_agree():
    """TOML files and command lines give an index as a string ('5'): it means the same unit as 5."""
    backbone = create_backbone("cifar_cnn_gap", pretrained=False)
    name = list(backbone.units)[4]
    assert backbone.resolve_layer(5) == backbone.resolve_layer("5") == backbone.resolve_layer(name) == 5
    assert backbone.resolve_layer(None) == len(backbone.units)


def test_bad_layer_and_pool_name_the_valid_options():
    backbone = create_backbone("cifar_cnn_gap", pretrained=False)
    x = torch.zeros(1, 3, 32, 32)
    with pytest.raises(
        TransferlabError, match=r"layer 8 is not a unit of cifar_cnn_gap; valid: 1\.\.7.*conv3_2"
    ):
        backbone.forward_features(x, layer=8)
    with pytest.raises(TransferlabError, match="layer 'fc9'"):
        backbone.forward_features(x, layer="fc9")
    with pytest.raises(TransferlabError, match="pool 'max' is unknown; valid: avg, flatten"):
        backbone.forward_features(x, pool="max")


def test_preprocess_uses_the_weights_size_normalisation_and_grey_to_rgb():
    backbone = create_backbone("cifar_cnn", pretrained=False)
    grey = np.full((3, 10, 12, 1), 255, dtype=np.uint8)
    x = backbone.preprocess(grey)
    assert x.dtype == torch.float32 and x.shape == (3, 3, 32, 32)
    assert torch.allclose(x, torch.full_like(x, (1.0 - 0.5) / 0.25))  # white, normalised with mean/std
    rgb = np.repeat(grey, 3, axis=-1)
    assert torch.equal(backbone.preprocess(torch.from_numpy(rgb)), x)
    assert backbone.preprocess(grey, size=20).shape == (3, 3, 20, 20)


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 8, 8, 3), np.float32), "must be uint8 .* got dtype float32"),
        (np.zeros((8, 8, 3), np.uint8), r"shape \(N, H, W, C\).*got \(8, 8, 3\).*images\[None\]"),
        (np.zeros((2, 3, 8, 8), np.uint8), r"C in 1 or 3.*got \(2, 3, 8, 8\)"),
        ([[1, 2]], "numpy array or torch tensor, got list"),
    ],
)
def test_preprocess_rejects_wrong_dtype_and_shape(images, message):
    with pytest.raises(TransferlabError, match=message):
        create_backbone("cifar_cnn", pretrained=False).preprocess(images)
