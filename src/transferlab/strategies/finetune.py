"""``finetune``: a pretrained backbone with units 1..k frozen and the rest, plus a new head, trained on
the target subset. k = 0 is "FTall" (everything trained). The new head learns at ``lr``; trainable
pretrained units at the smaller ``backbone_lr`` (default lr/10), so the few target images adjust rather
than overwrite what ImageNet taught. Frozen BatchNorm stays in eval mode (``Backbone.freeze``).

With k >= 1 and no augmentation, units 1..k are a fixed function of the image: their output is computed
once per image (read from the feature cache when an earlier run or study stored it) and only units
k+1..end + the head train on it, the same run without re-running the frozen units every step (see
``strategies/prefix.py``; ``prefix_cached`` in the hyperparameters says which path ran).

Recipes (each a spec field, combinable; the hyperparameters record what they chose):
- ``head_init="probe"``: LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution"). The linear head starts as the converged linear probe: a
  logistic regression on the frozen top features (the feature cache's entry, shared with extract),
  its C chosen on validation from ``PROBE_CS``, folded with its standardisation into the head's weights.
  Fine-tuning then moves features that a random head's large early gradients would distort. The start is
  a validation check, so early stopping can keep the probe itself when fine-tuning does not help.
- ``l2_sp=alpha``: L2-SP (Li et al. 2018, "Explicit Inductive Bias for Transfer Learning with
  Convolutional Networks"): loss + alpha/2 * ||w - w_pretrained||^2 over the trained pretrained units, so
  they stay near the starting point instead of near zero (plain weight decay's pull).
- ``layer_decay=d``: discriminative learning rates (ULMFiT's, BEiT's layer decay): the top trained unit
  learns at ``backbone_lr``, the one below at ``backbone_lr * d``, and so on down."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError
from transferlab.features import cached_features
from transferlab.models.heads import FC_HIDDEN, GlobalAveragePool, fc_stack
from transferlab.models.registry import create_backbone
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import (
    Fitted,
    image_transform,
    network_result,
    resolve_device,
    target_task,
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
            fc_stack(
                model.num_features,
                num_classes,
                FC_HIDDEN[spec.head],
                spec.activation,
                spec.init,
                spec.dropout,
            ),
        ).to(next(model.parameters()).device)


PROBE_CS = (0.01, 0.1, 1.0, 10.0)  # LP-FT's probe: logistic-regression C values, chosen on validation


def split_groups(model, spec: RunSpec) -> list[dict]:
    """Optimizer groups: the classifier at ``lr``, every other trainable parameter at ``backbone_lr``; with
    ``layer_decay`` one group per trained unit, the top one at ``backbone_lr`` and each lower one at
    ``layer_decay`` times the rate of the unit above."""
    head_ids = {id(p) for p in model.classifier.parameters()}
    trainable = model.trainable_parameters()
    groups = [{"params": [p for p in trainable if id(p) in head_ids], "lr": spec.lr}]
    if spec.layer_decay is None:
        return groups + [{"params": [p for p in trainable if id(p) not in head_ids], "lr": spec.backbone_lr}]
    trainable_ids = {id(p) for p in trainable}
    placed = set(head_ids)
    for depth, unit in enumerate(reversed(list(model.units.values()))):
        params = [p for p in unit.parameters() if id(p) in trainable_ids and id(p) not in placed]
        placed.update(id(p) for p in params)
        groups.append({"params": params, "lr": spec.backbone_lr * spec.layer_decay**depth})
    rest = [
        p for p in trainable if id(p) not in placed
    ]  # outside every unit (none in the registry's backbones)
    return groups + [{"params": rest, "lr": spec.backbone_lr}]


def l2_sp_penalty(model, alpha: float):
    """() -> alpha/2 * sum ||w - w0||^2 over the trained parameters outside the classifier, w0 their values
    now (the pretrained ones); None when alpha is 0 or nothing outside the classifier trains."""
    head_ids = {id(p) for p in model.classifier.parameters()}
    anchored = [(p, p.detach().clone()) for p in model.trainable_parameters() if id(p) not in head_ids]
    if not alpha or not anchored:
        return None

    def penalty() -> torch.Tensor:
        return 0.5 * alpha * sum(((p - p0) ** 2).sum() for p, p0 in anchored)

    return penalty


def linear_probe_head(model, spec: RunSpec, data: ImageSet, task, device) -> dict:
    """LP-FT's start: fit the logistic-regression probe on the frozen top features of the task's train
    images (C from ``PROBE_CS`` by validation accuracy, then validation loss), fold its standardisation
    into ``model.classifier``'s linear layer (logits = W (x - mu) / sigma + b), and return what it chose."""
    from transferlab.models.heads import LogRegHead

    def features(part: str) -> np.ndarray:
        return cached_features(
            data,
            getattr(task.split, part),
            spec.backbone,
            layer=None,
            pool="avg",
            size=spec.input_size,
            device=device,
        )

    x_train, y_train = features("train"), task.labels["train"].numpy()
    has_val = len(task.labels["val"]) > 0
    x_val, y_val = (features("val"), task.labels["val"].numpy()) if has_val else (None, None)
    scores = {}
    for C in PROBE_CS if has_val else (1.0,):
        probe = LogRegHead(C=C).fit(x_train, y_train)
        scores[C] = (probe.score(x_val, y_val), -probe.loss(x_val, y_val)) if has_val else (0.0, 0.0)
    best_C = max(scores, key=lambda c: scores[c])
    probe = LogRegHead(C=best_C).fit(x_train, y_train)
    scaler, logistic = probe.estimator_[0], probe.estimator_[1]
    weight = logistic.coef_ / scaler.scale_  # (K or 1, D)
    bias = logistic.intercept_ - weight @ scaler.mean_
    if weight.shape[0] == 1:  # binary: sklearn's one score is class 1's logit against class 0's zero
        weight, bias = np.concatenate([np.zeros_like(weight), weight]), np.concatenate([[0.0], bias])
    linear = model.classifier.fc
    if tuple(linear.weight.shape) != weight.shape or len(probe.classes_) != task.num_classes:
        raise TransferlabError(
            f"the linear probe has {weight.shape} weights but the head is "
            f"{tuple(linear.weight.shape)}; LP-FT needs every class in the training subset"
        )
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(weight, dtype=linear.weight.dtype))
        linear.bias.copy_(torch.as_tensor(bias, dtype=linear.bias.dtype))
    val_accuracy = scores[best_C][0] if has_val else None
    return {
        "probe_C": best_C,
        "probe_val_accuracy": val_accuracy,
        "probe_Cs": list(PROBE_CS) if has_val else [1.0],
    }


def fit_evaluate(
    spec: RunSpec, data: ImageSet, progress: bool = False, keep: Fitted | None = None
) -> RunResult:
    """Fine-tune ``spec.backbone`` (pretrained) with units 1..``spec.frozen`` frozen and a new head.
    ``keep``: a :class:`Fitted` that receives the trained ``model`` and the ``task`` (for ``transferlab fit``)."""
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
    probe = linear_probe_head(model, spec, data, task, device) if spec.head_init == "probe" else {}
    model.freeze(spec.frozen)
    model.to(device)
    config = train_config(spec, progress, evaluate_start=spec.head_init == "probe")
    fit = fit_frozen_prefix(
        model,
        spec,
        data,
        task,
        config,
        image_transform(model, spec, device),
        split_groups(model, spec),
        device,
        cache=True,
        progress=progress,
        penalty=l2_sp_penalty(model, spec.l2_sp) if spec.l2_sp else None,
    )
    hyper = {
        "frozen_units": units[: spec.frozen],
        "weights_sha256": model.weights_sha256,
        **probe,
        **fit.hyperparameters,
    }
    if keep is not None:
        keep.model, keep.task = model, task.split  # the whole network: it predicts from images
    return network_result(spec, task, fit.score, hyperparameters=hyper, features_seconds=fit.seconds)
