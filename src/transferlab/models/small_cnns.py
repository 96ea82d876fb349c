"""The studies' own small CNNs, trained from scratch or transferred source->target (no pretrained weights).

- ``cifar_cnn``: the CIFAR-domains report's Table 1 (seed 003). Three blocks of [conv3x3+ReLU+BN,
  conv3x3+ReLU+BN, max-pool 2, dropout] with 32/64/128 filters, flatten 4x4x128 = 2,048, FC 256, FC 128,
  output. 845,473 parameters with one output (Table 1 lists 846,369 because Keras counts BatchNorm's two
  running statistics as parameters too: 896 more). Its freeze sweep counts "ten trainable layers" and
  freezes 0..9 with the classification layer always trainable; those ten are Table 1's ten
  Convolution/FC/Output rows, whose first row ("Convolution 32x32x3", 0 parameters) is the input. We keep
  that numbering so that frozen depth k means the same as in the report's heatmaps: unit 1 ``input``
  holds no parameters, units 2-7 are the convolutions, 8-9 the FC layers and 10 the output layer.
- ``cifar_cnn_gap``: the same convolutional base with global average pooling straight into the output
  layer (no dense layers; the report's Table 2 "remastered" model flattens instead, 2,049 output weights).
- ``shallow_cnn``: the VGG16 study's "baseline system" with one convolutional layer (seed 001 says only
  that; the rest is ours): conv3x3 32 + ReLU, max-pool to 16x16, dropout, FC 128, output; 64 px inputs.
- ``alexnet64``: Caffe's reference AlexNet as the Yosinski-style thesis (seed 004) ran it on 64 px images
  with 57 px crops: conv1 11x11/4 96, LRN, pool; conv2 5x5 256 (2 groups), LRN, pool; conv3 384; conv4
  384 (2 groups); conv5 256 (2 groups), pool; fc6 4096; fc7 4096; fc8. Eight layers as Yosinski counts.

Why the adaptive pools: at the studies' input sizes they are exactly the fixed pools of the papers
(8x8 -> 4x4 in cifar_cnn, 64 -> 16 in shallow_cnn, 3x3 -> 1x1 in alexnet64); at other sizes they keep
the flattened width, so ``preprocess(images, size=...)`` cannot break the dense layers.
"""

from __future__ import annotations

import torch
from torch import nn

from transferlab.data.transforms import ImageTransform
from transferlab.errors import TransferlabError
from transferlab.models.backbone import Backbone, LinearClassifier, WeightSpec
from transferlab.models.registry import register_backbone

# Scratch models have no training statistics to follow: centre pixels and give them roughly unit spread.
SCRATCH_MEAN, SCRATCH_STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
DEFAULT_CLASSES = 10  # CIFAR-10 / Fashion-MNIST; pass num_classes to create_backbone for other tasks


class AdaptiveMaxPool2d(nn.AdaptiveMaxPool2d):
    """``nn.AdaptiveMaxPool2d`` run in channels-last memory layout, output contiguous again: the same
    windows and first-maximum rule, so bit-identical values and gradients (tests/models check both), but
    PyTorch's CPU kernel for NCHW is scalar while the channels-last one is vectorised over channels:
    shallow_cnn's 28 -> 16 px pool on (50, 32, 28, 28) took 20.2 ms forward, 24.7 ms with backward, vs
    3.1 / 14.6 ms (1 thread), and was the largest item of a scratch run. Layouts outside stay NCHW, as
    the layers around it change their arithmetic with the layout: dropout draws its mask in memory order,
    and BatchNorm's backward sums in another order for a channels-last gradient."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channels_last = x.contiguous(memory_format=torch.channels_last)
        if channels_last is not x and channels_last.requires_grad:
            channels_last.register_hook(torch.Tensor.contiguous)  # hand the gradient back as NCHW
        return super().forward(channels_last).contiguous()


def _scratch_spec(source: str, resize: int, crop: int | None = None) -> WeightSpec:
    return WeightSpec(
        source=source,
        license="n/a",
        transform=ImageTransform(resize, crop or resize, SCRATCH_MEAN, SCRATCH_STD),
    )


def _no_native_layout(name: str, state_dict) -> None:
    """These models exist only in transferlab, so the only weight layout is a saved Backbone's."""
    if state_dict is not None:
        some = ", ".join(list(state_dict)[:3])
        raise TransferlabError(
            f"{name}: weights must be a state_dict saved from a transferlab Backbone (keys 'units.…', "
            f"'classifier.…'), got keys {some}, …"
        )


def _conv_bn(in_channels: int, out_channels: int, *after: nn.Module) -> nn.Sequential:
    """3x3 'same' convolution, ReLU, BatchNorm (Keras order: activation inside Conv2D, BN after)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.BatchNorm2d(out_channels),
        *after,
    )


def _cifar_conv_units() -> list[tuple[str, nn.Module]]:
    """Table 1's input row and six convolution units; pooling and dropout ride on each block's 2nd conv."""
    return [
        ("input", nn.Identity()),
        ("conv1_1", _conv_bn(3, 32)),
        ("conv1_2", _conv_bn(32, 32, nn.MaxPool2d(2), nn.Dropout(0.2))),
        ("conv2_1", _conv_bn(32, 64)),
        ("conv2_2", _conv_bn(64, 64, nn.MaxPool2d(2), nn.Dropout(0.3))),
        ("conv3_1", _conv_bn(64, 128)),
        ("conv3_2", _conv_bn(128, 128, AdaptiveMaxPool2d(4), nn.Dropout(0.4))),
    ]


CIFAR_SPEC = _scratch_spec("random init (CIFAR-domains report, Table 1)", 32)


@register_backbone("cifar_cnn", CIFAR_SPEC)
def cifar_cnn(state_dict=None) -> Backbone:
    """The CIFAR-domains report's CNN (Table 1): 6 conv + BN, FC 256, FC 128; 32 px; 10 layers."""
    _no_native_layout("cifar_cnn", state_dict)
    units = _cifar_conv_units() + [
        ("fc1", nn.Sequential(nn.Flatten(), nn.Linear(4 * 4 * 128, 256), nn.ReLU(inplace=True))),
        ("fc2", nn.Sequential(nn.Linear(256, 128), nn.ReLU(inplace=True))),
    ]
    return Backbone(
        "cifar_cnn",
        units,
        LinearClassifier(128, DEFAULT_CLASSES),
        128,
        DEFAULT_CLASSES,
        CIFAR_SPEC,
        classifier_unit="output",
    )


CIFAR_GAP_SPEC = _scratch_spec("random init (CIFAR-domains report, conv base of Table 1/2)", 32)


@register_backbone("cifar_cnn_gap", CIFAR_GAP_SPEC)
def cifar_cnn_gap(state_dict=None) -> Backbone:
    """The CIFAR CNN's conv base, global average pooling, output (no dense layers); 32 px; 8 layers."""
    _no_native_layout("cifar_cnn_gap", state_dict)
    return Backbone(
        "cifar_cnn_gap",
        _cifar_conv_units(),
        LinearClassifier(128, DEFAULT_CLASSES),
        128,
        DEFAULT_CLASSES,
        CIFAR_GAP_SPEC,
        classifier_unit="output",
    )


SHALLOW_SPEC = _scratch_spec("random init (VGG16 study's one-conv baseline)", 64)


@register_backbone("shallow_cnn", SHALLOW_SPEC)
def shallow_cnn(state_dict=None) -> Backbone:
    """One conv layer (32 3x3), max-pool to 16x16, FC 128, output: the VGG16 study's baseline; 64 px."""
    _no_native_layout("shallow_cnn", state_dict)
    units = [
        (
            "conv1",
            nn.Sequential(
                nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(inplace=True), AdaptiveMaxPool2d(16), nn.Dropout(0.25)
            ),
        ),
        (
            "fc1",
            nn.Sequential(nn.Flatten(), nn.Linear(32 * 16 * 16, 128), nn.ReLU(inplace=True), nn.Dropout(0.5)),
        ),
    ]
    return Backbone(
        "shallow_cnn",
        units,
        LinearClassifier(128, DEFAULT_CLASSES),
        128,
        DEFAULT_CLASSES,
        SHALLOW_SPEC,
        classifier_unit="output",
    )


ALEXNET64_SPEC = _scratch_spec("random init (Caffe reference AlexNet, Yosinski-style thesis)", 64, 57)


def _lrn() -> nn.LocalResponseNorm:
    return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)


@register_backbone("alexnet64", ALEXNET64_SPEC)
def alexnet64(state_dict=None) -> Backbone:
    """Caffe's AlexNet on 57 px crops of 64 px images (the thesis' setup): 5 conv + 3 FC = 8 layers."""
    _no_native_layout("alexnet64", state_dict)
    relu = lambda: nn.ReLU(inplace=True)  # noqa: E731  (one fresh module per use)
    pool = lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True)  # noqa: E731  (Caffe rounds pool sizes up)
    units = [
        ("conv1", nn.Sequential(nn.Conv2d(3, 96, 11, stride=4), relu(), _lrn(), pool())),
        ("conv2", nn.Sequential(nn.Conv2d(96, 256, 5, padding=2, groups=2), relu(), _lrn(), pool())),
        ("conv3", nn.Sequential(nn.Conv2d(256, 384, 3, padding=1), relu())),
        ("conv4", nn.Sequential(nn.Conv2d(384, 384, 3, padding=1, groups=2), relu())),
        ("conv5", nn.Sequential(nn.Conv2d(384, 256, 3, padding=1, groups=2), relu(), AdaptiveMaxPool2d(1))),
        ("fc6", nn.Sequential(nn.Flatten(), nn.Linear(256, 4096), relu(), nn.Dropout(0.5))),
        ("fc7", nn.Sequential(nn.Linear(4096, 4096), relu(), nn.Dropout(0.5))),
    ]
    return Backbone(
        "alexnet64",
        units,
        LinearClassifier(4096, DEFAULT_CLASSES),
        4096,
        DEFAULT_CLASSES,
        ALEXNET64_SPEC,
        classifier_unit="fc8",
    )
