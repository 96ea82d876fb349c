"""Training a network with units 1..k frozen on the output of those units, computed once per image.

Claim: when the training images are not augmented and nothing in units 1..k is random or adapts in
training mode (BatchNorm in eval mode, as ``Backbone.freeze`` keeps it; no active dropout or drop-path),
the output of units 1..k is a fixed function of the image. Computing it once for the run's train,
validation and test images and training units k+1..end + the classifier on those maps is the same run
as training the whole network on images: the same batch order (the batch transform draws nothing from
the run's generator without augmentation), optimizer groups (the same parameter objects), epochs, early
stopping, history and scores, up to float rounding of the maps (batched extraction with BatchNorm
folded into the convolutions, ~1e-5 relative). Only the frozen units stop running in every training
step, validation pass and BatchNorm recalibration. Evidence: tests/strategies/test_prefix.py (losses per
epoch and test scores match the full network), ``benchmarks/finetune_prefix.py`` (time of a quickstart
finetune run, full network vs maps from a cold and a warm cache).

Maps are the unpooled output of unit k, float32 (N, C, H, W) (or (N, D) after a flattening unit). With
a pretrained backbone named by the spec (finetune), they come from the feature cache
(``features.cached_features`` with ``pool="flatten"``, reshaped), so a second study with the same
backbone, input size, k and images reads them instead of computing them. That entry is the one an
extract run with ``pool="flatten"`` at the same layer uses (the same numbers, NCHW flattened) and never
one of its pooled ``avg`` entries. A source model trained inside the run (snt) has no such name: its
maps are computed once per run and not cached.

Memory: the maps of every image of the run are held in memory (and stored in the cache). Above
``PREFIX_BUDGET_BYTES`` (1 GiB) the run takes the full network instead. E.g. lite0 unit 6 at 64 px is
112x4x4 floats = 7 KB per image, 18 MB for the quickstart's 2,550 images; lite0 unit 1 at 224 px is
1.6 MB per image, 96 GB for 60,000 images, so that run falls back.

Fallback (the full network on images, exactly as without this module) when k = 0, augmentation is on,
a frozen unit is random in training mode, or the maps exceed the budget. The run's hyperparameters say
which path ran: ``prefix_cached`` (true: trained on maps computed once) and ``prefix_fallback`` (why not).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.dropout import _DropoutNd

from transferlab.data.augment import parse_augment
from transferlab.data.imageset import ImageSet
from transferlab.features import cached_features, extract_features
from transferlab.models.backbone import Backbone
from transferlab.models.registry import get_backbone_entry
from transferlab.runs import RunSpec
from transferlab.strategies.base import PARTS, NetworkScore, TaskData, fit_network
from transferlab.train import BatchTransform, TrainConfig, seeded

PREFIX_BUDGET_BYTES = 1 << 30  # float32 maps of all the run's images; above this, train the full network
PROBE_IMAGES = 2  # training images run through the frozen units in training and eval mode (must agree)


class PrefixTail(nn.Module):
    """Units k+1..end and the classifier of ``backbone`` (its own modules, not copies): the output of
    unit k -> logits (N, num_classes). ``train()``/``eval()`` reach the backbone, so its freeze rule holds."""

    def __init__(self, backbone: Backbone, k: int) -> None:
        super().__init__()
        self.backbone, self.k = backbone, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.classifier(self.backbone.run_units(x, len(self.backbone.units), self.k))


@dataclass
class PrefixFit:
    """What :func:`fit_frozen_prefix` did: the score, the hyperparameters saying which path ran, and the
    seconds spent getting the maps (0 on the full-network path)."""

    score: NetworkScore
    hyperparameters: dict
    seconds: float


def random_in_training(model: Backbone, k: int) -> list[str]:
    """Modules of units 1..k whose training-mode output is not their eval-mode one: BatchNorm in
    training mode (``freeze(k, bn="train")``), dropout with p > 0, drop-path (timm's ``drop_prob`` > 0)."""
    was_training = model.training
    model.train()  # the mode training runs the network in; Backbone.train keeps frozen BatchNorm in eval
    try:
        found = []
        for unit_name, unit in list(model.units.items())[:k]:
            for name, module in unit.named_modules():
                by_type = isinstance(module, _BatchNorm) or (isinstance(module, _DropoutNd) and module.p > 0)
                if module.training and (by_type or getattr(module, "drop_prob", 0) > 0):
                    found.append(f"{unit_name}{'.' + name if name else ''} ({type(module).__name__})")
        return found
    finally:
        model.train(was_training)


def fallback_reason(model: Backbone, spec: RunSpec, k: int) -> str | None:
    """Why units 1..k of ``model`` are not a fixed function of the image in this run, or None if they
    are as far as their module types tell (:func:`fit_frozen_prefix` also checks a probe batch)."""
    if k == 0:
        return "no frozen units (frozen=0)"
    if parse_augment(spec.augment):
        return f"augment={spec.augment}: the training images are random"
    stochastic = random_in_training(model, k)
    if stochastic:
        return f"units 1..{k} are random in training mode: {', '.join(stochastic[:3])}"
    return None


@torch.no_grad()
def probe_prefix(
    model: Backbone, k: int, images: torch.Tensor, spec: RunSpec, device: torch.device
) -> tuple[torch.Tensor, str | None]:
    """(eval-mode output of units 1..k on a few images, why training mode differs or None): the catch-all
    for randomness ``random_in_training`` does not know by type (e.g. RReLU)."""
    x = model.preprocess(images[:PROBE_IMAGES], size=spec.input_size, device=device)
    was_training = model.training
    try:
        with seeded(0):  # whatever a random module draws here stays out of the global RNG
            model.train()
            trained = model.run_units(x, k)
            model.eval()
            evaluated = model.run_units(x, k)
    finally:
        model.train(was_training)
    if not torch.allclose(trained, evaluated, rtol=1e-5, atol=1e-6):
        return evaluated, f"units 1..{k} give other outputs in training mode than in eval mode"
    return evaluated, None


def prefix_maps(
    model: Backbone,
    k: int,
    spec: RunSpec,
    data: ImageSet,
    task: TaskData,
    device: torch.device,
    shape: tuple[int, ...],
    *,
    cache: bool,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """float32 maps (N, *shape) of units 1..k for each part's images, on ``device``: from the feature
    cache when ``cache`` and ``spec.backbone`` names pretrained weights (``model``'s units 1..k must be
    those weights), else computed now with ``model``."""
    named = cache and get_backbone_entry(spec.backbone).pretrained
    traced: dict = {}  # one trace of units 1..k serves the three parts (they stay frozen meanwhile)
    maps = {}
    for part in PARTS:
        if named:
            flat = cached_features(
                data,
                getattr(task.split, part),
                spec.backbone,
                layer=k,
                pool="flatten",
                size=spec.input_size,
                device=device,
                progress=progress,
            )
        else:
            flat = extract_features(
                model,
                task.images[part],
                k,
                pool="flatten",
                size=spec.input_size,
                progress=progress,
                traced_cache=traced,
            )
        maps[part] = torch.from_numpy(flat).reshape(len(flat), *shape).to(device)
    return maps


def _as_is(batch: torch.Tensor, training: bool, generator: torch.Generator) -> torch.Tensor:
    return batch


def fit_frozen_prefix(
    model: Backbone,
    spec: RunSpec,
    data: ImageSet,
    task: TaskData,
    config: TrainConfig,
    transform: BatchTransform,
    param_groups: list[dict],
    device: torch.device,
    *,
    cache: bool,
    progress: bool = False,
    penalty=None,
) -> PrefixFit:
    """``fit_network(model, task, config, transform, param_groups)`` with units 1..``spec.frozen`` of
    ``model`` (already frozen) computed once per image when that is the same run (module docstring), else
    on images. ``model`` ends trained either way (units k+1..end and classifier), ready to predict from
    images. cache: read/store the maps in the feature cache (only for a pretrained ``spec.backbone``).
    penalty: added to every step's loss (see :func:`transferlab.train.train`)."""
    k = spec.frozen
    why = fallback_reason(model, spec, k)
    probe = None
    if why is None:
        probe, why = probe_prefix(model, k, task.images["train"], spec, device)
    if why is None:
        count = sum(len(task.labels[part]) for part in PARTS)
        nbytes = 4 * math.prod(probe.shape[1:]) * count
        if nbytes > PREFIX_BUDGET_BYTES:
            why = (
                f"maps of units 1..{k} for {count} images would take {nbytes / 2**20:,.0f} MiB, over "
                f"the {PREFIX_BUDGET_BYTES / 2**20:,.0f} MiB budget"
            )
    if why is not None:
        score = fit_network(model, task, config, transform, param_groups, penalty)
        return PrefixFit(score, {"prefix_cached": False, "prefix_fallback": why}, 0.0)
    started = time.perf_counter()
    shape = tuple(probe.shape[1:])
    maps = prefix_maps(model, k, spec, data, task, device, shape, cache=cache, progress=progress)
    seconds = time.perf_counter() - started
    score = fit_network(
        PrefixTail(model, k), TaskData(task.split, maps, task.labels), config, _as_is, param_groups, penalty
    )
    return PrefixFit(score, {"prefix_cached": True, "prefix_shape": list(shape)}, seconds)
