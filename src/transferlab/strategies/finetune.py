"""``finetune``: a pretrained backbone with units 1..k frozen and the rest, plus a new head, trained on
the target subset. k = 0 is "FTall" (everything trained). The new head learns at ``lr``; trainable
pretrained units at the smaller ``backbone_lr`` (default lr/10), so the few target images adjust rather
than overwrite what ImageNet taught. Frozen BatchNorm stays in eval mode (``Backbone.freeze``).

With k >= 1 and no augmentation, units 1..k are a fixed function of the image: their output is computed
once per image (read from the feature cache when an earlier run or study stored it) and only units
k+1..end + the head train on it, the same run without re-running the frozen units every step (see
``strategies/prefix.py``; ``prefix_cached`` in the hyperparameters says which path ran)."""

from __future__ import annotations

from torch import nn

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError
from transferlab.models.heads import FC_HIDDEN, GlobalAveragePool, fc_stack
from transferlab.models.registry import create_backbone
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import (
    Strategy,
    image_transform,
    network_result,
    resolve_device,
    target_task,  # fmt: skip
    train_config,
)
from transferlab.strategies.prefix import fit_frozen_prefix
from transferlab.train import seeded


def attach_head(model, spec: RunSpec, num_classes: int) -> None:
    """Give ``model`` a fresh classifier for ``num_classes``: the backbone's own linear one ("linear") or
    global average pooling + an fc1-3 stack on its ``num_features`` pooled features."""
    model.reset_classifier(num_classes)
    if spec.head in FC_HIDDEN:
        # Backbone.reset_classifier only makes linear heads; the fc stack replaces it on the same input.
        model.classifier = nn.Sequential(
            GlobalAveragePool(),
            fc_stack(model.num_features, num_classes, FC_HIDDEN[spec.head], spec.activation, spec.init, spec.dropout),
        ).to(next(model.parameters()).device)


def split_groups(model, spec: RunSpec) -> list[dict]:
    """Optimizer groups: the classifier at ``lr``, every other trainable parameter at ``backbone_lr``."""
    head_ids = {id(p) for p in model.classifier.parameters()}
    trainable = model.trainable_parameters()
    return [
        {"params": [p for p in trainable if id(p) in head_ids], "lr": spec.lr},
        {"params": [p for p in trainable if id(p) not in head_ids], "lr": spec.backbone_lr},
    ]


def fit_evaluate(spec: RunSpec, data: ImageSet, progress: bool = False, keep: dict | None = None) -> RunResult:  # fmt: skip
    """Fine-tune ``spec.backbone`` (pretrained) with units 1..``spec.frozen`` frozen and a new head.
    ``keep``: a dict that receives the trained ``model`` and the ``task`` (for ``transferlab fit``)."""
    device = resolve_device(spec.device)
    task = target_task(spec, data)
    with seeded(spec.seed):
        model = create_backbone(spec.backbone, pretrained=True)
        units = list(model.units)
        if spec.frozen > len(units):
            raise TransferlabError(
                f"frozen={spec.frozen} is out of range for {spec.backbone}: the new head is always trained, so "
                f"valid depths are 0..{len(units)} (units: {', '.join(units)})"
            )
        attach_head(model, spec, task.num_classes)
    model.freeze(spec.frozen)
    model.to(device)
    fit = fit_frozen_prefix(model, spec, data, task, train_config(spec, progress), image_transform(model, spec, device),
                            split_groups(model, spec), device, cache=True, progress=progress)  # fmt: skip
    hyper = {"frozen_units": units[: spec.frozen], "weights_sha256": model.weights_sha256, **fit.hyperparameters}
    if keep is not None:
        keep.update(model=model, task=task.split)  # the whole network: it predicts from images
    return network_result(spec, task, fit.score, hyperparameters=hyper, features_seconds=fit.seconds)


STRATEGY = Strategy(
    name="finetune",
    summary="pretrained backbone, units 1..k frozen, the rest + a new head trained (k=0: FTall)",
    fit_evaluate=fit_evaluate,
    heads=("linear", "fc1", "fc2", "fc3"),
    default_backbone="efficientnet_lite0.in1k",
)
