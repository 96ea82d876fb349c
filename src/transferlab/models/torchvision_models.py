"""torchvision's VGG16, MobileNetV2, ResNet18 and AlexNet behind the Backbone interface.

``<arch>.tv_in1k`` loads torchvision's ImageNet-1k file (IMAGENET1K_V1) from a local copy: the file a
connected machine's torchvision downloads into ``~/.cache/torch/hub/checkpoints/``. It is never fetched
here and never replaced by random weights; ``<arch>.scratch`` is the random-init baseline.

Units, as the studies count layers: VGG16 = its 13 convolutions (conv+ReLU, with the following max-pool
riding on the last conv of each block); AlexNet = conv1..conv5, fc6, fc7 and the classifier fc8 (8, as
Yosinski counts); ResNet18 = stem, layer1..layer4; MobileNetV2 = its 19 feature stages.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from transferlab.data.transforms import ImageTransform
from transferlab.models.backbone import Backbone, LinearClassifier, WeightSpec
from transferlab.models.registry import register_backbone
from transferlab.models.weights import WEIGHTS_DIR_ENV, load_exact

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
# torchvision's eval recipe: resize 256, centre crop 224, bilinear.
TV_TRANSFORM = ImageTransform(256, 224, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
TV_LICENSE = "BSD-3-Clause; ImageNet terms"  # torchvision code licence; the weights inherit ImageNet's terms

# arch -> IMAGENET1K_V1 file name (its 8 hex digits are the sha256 prefix torch.hub checks)
TV_FILES = {
    "vgg16": "vgg16-397923af.pth",
    "mobilenet_v2": "mobilenet_v2-b0353104.pth",
    "resnet18": "resnet18-f37072fd.pth",
    "alexnet": "alexnet-owt-7be5be79.pth",
}


def _vgg16_units(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], nn.Module, int, str | None]:
    layers = list(model.features)
    starts = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)] + [len(layers)]
    units, block, position = [], 1, 0
    for start, end in zip(starts, starts[1:], strict=False):
        position += 1
        units.append((f"conv{block}_{position}", nn.Sequential(*layers[start:end])))
        if isinstance(layers[end - 1], nn.MaxPool2d):
            block, position = block + 1, 0
    classifier = nn.Sequential(model.avgpool, nn.Flatten(1), model.classifier)
    return units, classifier, 512, None


def _alexnet_units(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], nn.Module, int, str | None]:
    layers = list(model.features)
    starts = [i for i, layer in enumerate(layers) if isinstance(layer, nn.Conv2d)] + [len(layers)]
    units = [
        (f"conv{n + 1}", nn.Sequential(*layers[a:b]))
        for n, (a, b) in enumerate(zip(starts, starts[1:], strict=False))
    ]
    head = list(model.classifier)  # Dropout, Linear 9216-4096, ReLU, Dropout, Linear 4096-4096, ReLU, Linear
    units += [
        ("fc6", nn.Sequential(model.avgpool, nn.Flatten(1), *head[0:3])),
        ("fc7", nn.Sequential(*head[3:6])),
    ]
    classifier = LinearClassifier(4096, head[6].out_features)
    classifier.fc = head[6]
    return units, classifier, 4096, "fc8"


def _resnet18_units(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], nn.Module, int, str | None]:
    units = [("stem", nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool))]
    units += [(f"layer{i}", getattr(model, f"layer{i}")) for i in range(1, 5)]
    classifier = LinearClassifier(model.fc.in_features, model.fc.out_features)
    classifier.fc = model.fc
    return units, classifier, model.fc.in_features, None


def _mobilenet_v2_units(model: nn.Module) -> tuple[list[tuple[str, nn.Module]], nn.Module, int, str | None]:
    stages = list(model.features)
    units = (
        [("stem", stages[0])]
        + [(f"block{i}", s) for i, s in enumerate(stages[1:-1], 1)]
        + [("head", stages[-1])]
    )
    dropout, linear = model.classifier
    classifier = LinearClassifier(linear.in_features, linear.out_features, dropout=dropout.p)
    classifier.fc = linear
    return units, classifier, linear.in_features, None


_CARVERS: dict[str, Callable] = {
    "vgg16": _vgg16_units,
    "alexnet": _alexnet_units,
    "resnet18": _resnet18_units,
    "mobilenet_v2": _mobilenet_v2_units,
}


def _build(arch: str, name: str, spec: WeightSpec, state_dict: dict[str, torch.Tensor] | None) -> Backbone:
    import torchvision

    model = getattr(torchvision.models, arch)(weights=None)
    if state_dict is not None:
        load_exact(model, state_dict, f"the weight file of {name} (torchvision layout)")
    units, classifier, num_features, classifier_unit = _CARVERS[arch](model)
    return Backbone(name, units, classifier, num_features, 1000, spec, classifier_unit=classifier_unit)


def _register(arch: str) -> None:
    file = TV_FILES[arch]
    url = f"https://download.pytorch.org/models/{file}"
    pretrained = WeightSpec(
        source=f"torchvision {arch} IMAGENET1K_V1 (local file)",
        license=TV_LICENSE,
        transform=TV_TRANSFORM,
        file=file,
        sha256=file.rsplit("-", 1)[1].removesuffix(".pth"),
        url=url,
        obtain=(
            f'On a connected machine run `python -c "import torchvision; torchvision.models.{arch}'
            f"(weights='IMAGENET1K_V1')\"` (or download {url}) and copy the file into the torch hub "
            f"cache (~/.cache/torch/hub/checkpoints/) or ${WEIGHTS_DIR_ENV}."
        ),
    )
    scratch = WeightSpec(source=f"random init (torchvision {arch})", license="n/a", transform=TV_TRANSFORM)
    for tag, spec in (("tv_in1k", pretrained), ("scratch", scratch)):
        name = f"{arch}.{tag}"

        def build(state_dict, arch=arch, name=name, spec=spec) -> Backbone:
            return _build(arch, name, spec, state_dict)

        register_backbone(name, spec, f"torchvision {arch} ({tag})")(build)


for _arch in TV_FILES:
    _register(_arch)
