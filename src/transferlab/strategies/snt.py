"""``snt``: Yosinski-style source -> target transfer between class-disjoint halves of one dataset (the
Tiny-ImageNet / MiniPlaces thesis, seed 004).

1. A source model (``spec.backbone`` from random init) is trained on the source classes. It is stored
   under ``cache_dir()/source_models`` by a content key (dataset fingerprint, source classes,
   architecture, every training setting, seed, ``SOURCE_MODEL_FORMAT``), so every target run of a sweep — all n,
   frozen or fine-tuned — reuses the same source model instead of retraining it.
2. A fresh target model (same architecture, new classifier for the target classes) receives units 1..n
   (``spec.transfer``) from the source model.
3. Units 1..``spec.frozen`` stay frozen: ``frozen = transfer`` is SnT, ``frozen = 0`` is SnT+ (the
   transferred units are fine-tuned at ``backbone_lr``, by default the same lr, as Yosinski did);
   ``transfer = 0`` is ``base``, the same architecture from scratch on the target.

Frozen units 1..k without training-mode randomness or augmentation run once per image, as in finetune
(``strategies/prefix.py``), but their maps are kept for the run only: they come from a source model
(trained or read in the run), not a named weight file the feature cache could key on. The studies' ``cifar_cnn`` has dropout in its units 3, 5 and 7, which training applies
in frozen units too, so there only k <= 2 qualifies (``prefix_fallback`` says why otherwise).
"""

from __future__ import annotations

import hashlib
import json
import time

import torch

from transferlab import paths
from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError
from transferlab.models.backbone import Backbone
from transferlab.models.registry import create_backbone
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import (
    Fitted,
    fit_network,
    image_transform,
    load_task,
    network_result,
    resolve_device,
    sides,
    train_config,
)
from transferlab.strategies.prefix import fit_frozen_prefix
from transferlab.train import seeded
from transferlab.version import code_version

SOURCE_FOLDER = "source_models"
# Part of every source-model key. Bump it when a change alters the model trained for the same settings
# (training loop, initialisation, data order, augmentation numerics): cached models of another format are
# then retrained, never reused. Not the code version: any edit would retrain every source model.
SOURCE_MODEL_FORMAT = 1


def source_key(spec: RunSpec, data: ImageSet, source_classes: tuple[int, ...]) -> tuple[str, dict]:
    """(content key, the settings it hashes): what determines the source model's weights."""
    settings = {
        "dataset": data.fingerprint(),
        "source_classes": list(source_classes),
        "backbone": spec.backbone,
        "input_size": spec.input_size,
        "source_size": spec.source_size,
        "val_size": spec.val_size,
        "optimizer": spec.optimizer,
        "lr": spec.lr,
        "momentum": spec.momentum,
        "weight_decay": spec.weight_decay,
        "epochs": spec.source_epochs,
        "batch_size": spec.batch_size,
        "patience": spec.patience,
        "bn_stats": spec.bn_stats,
        "augment": spec.augment,
        "seed": spec.seed,
        "format": SOURCE_MODEL_FORMAT,
        # The rest of the budget _train_source gives train_config: a step budget when there are no epochs.
        "steps": None if spec.source_epochs else spec.steps,
        "schedule": spec.schedule,
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    return f"{spec.backbone}-{digest}", settings


def source_model(
    spec: RunSpec, data: ImageSet, source_classes: tuple[int, ...], device: torch.device, progress: bool
) -> tuple[Backbone, dict]:
    """The trained source model (from the cache, or trained and cached now) and its record: key, source
    validation/test accuracy, seconds spent training it, whether it came from the cache."""
    key, settings = source_key(spec, data, source_classes)
    weights_path = paths.cache_dir() / SOURCE_FOLDER / f"{key}.pt"
    record_path = weights_path.with_suffix(".json")
    with seeded(spec.seed):
        model = create_backbone(spec.backbone, pretrained=False, num_classes=len(source_classes))
    # Parallel workers of a study wait here for the one that trains this source model, then read it.
    with paths.exclusive(weights_path.with_suffix(".lock")):
        if weights_path.exists() and record_path.exists():
            model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
            record = json.loads(record_path.read_text())
            return model.to(device), {**record, "cached": True}
        return _train_source(model, spec, data, source_classes, key, settings, device, progress)


def _train_source(
    model: Backbone,
    spec: RunSpec,
    data: ImageSet,
    source_classes: tuple[int, ...],
    key: str,
    settings: dict,
    device: torch.device,
    progress: bool,
) -> tuple[Backbone, dict]:
    """Train the source model on the source side, store weights + record atomically, return both."""
    weights_path = paths.cache_dir() / SOURCE_FOLDER / f"{key}.pt"
    model.to(device)
    task = load_task(spec, data, source_classes, size=spec.source_size)
    config = train_config(
        spec, progress, epochs=spec.source_epochs, description=f"source model {spec.backbone}"
    )
    score = fit_network(model, task, config, image_transform(model, spec, device))
    record = {
        "key": key,
        "settings": settings,
        "n_train": len(task.split.train),
        "val_accuracy": score.val_accuracy,
        "test_accuracy": score.test_accuracy,
        "seconds": score.outcome.seconds + score.eval_seconds,
        "code_version": code_version(),
    }
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    paths.atomic_write(weights_path, lambda f: torch.save(state, f))
    paths.atomic_write(
        weights_path.with_suffix(".json"), lambda f: f.write(json.dumps(record, indent=2).encode())
    )
    return model, {**record, "cached": False}


def target_model(
    spec: RunSpec, source: Backbone | None, num_classes: int, device: torch.device
) -> tuple[Backbone, list[dict]]:
    """A fresh ``spec.backbone`` for ``num_classes`` with units 1..``spec.transfer`` copied from ``source``
    and units 1..``spec.frozen`` frozen, plus its optimizer groups: transferred units still trained at
    ``backbone_lr``, every other trainable parameter at ``lr``."""
    with seeded(spec.seed + 1):  # not the source's init: a different draw for the untransferred units
        model = create_backbone(spec.backbone, pretrained=False, num_classes=num_classes)
    transferred = list(model.named_units())[: spec.transfer]
    if spec.transfer > 0:
        source_units = dict(source.named_units())
        for name, unit in transferred:
            unit.load_state_dict(source_units[name].state_dict())
    model.freeze(spec.frozen).to(device)
    fine_tuned = {id(p) for _, unit in transferred for p in unit.parameters() if p.requires_grad}
    trainable = model.trainable_parameters()
    groups = [
        {"params": [p for p in trainable if id(p) not in fine_tuned], "lr": spec.lr},
        {"params": [p for p in trainable if id(p) in fine_tuned], "lr": spec.backbone_lr},
    ]
    return model, groups


def fit_evaluate(
    spec: RunSpec, data: ImageSet, progress: bool = False, keep: Fitted | None = None
) -> RunResult:
    """Transfer units 1..``spec.transfer`` of a source model into a fresh target model, freeze units
    1..``spec.frozen``, train on the target subset, score on the target test set. ``keep``: a :class:`Fitted` that
    receives the trained ``model`` and the ``task`` (for ``transferlab fit``)."""
    device = resolve_device(spec.device)
    classes = sides(spec, data)
    units = list(create_backbone(spec.backbone, pretrained=False).units)
    if spec.transfer > len(units):
        raise TransferlabError(
            f"transfer={spec.transfer} is out of range for {spec.backbone}: the classifier is task-specific, "
            f"so 0..{len(units)} units can be transferred ({', '.join(units)})"
        )
    task = load_task(spec, data, classes.target)
    started = time.perf_counter()
    source, record = None, {}
    if spec.transfer > 0:
        source, record = source_model(spec, data, classes.source, device, progress)
    source_seconds = time.perf_counter() - started
    model, groups = target_model(spec, source, task.num_classes, device)
    fit = fit_frozen_prefix(
        model,
        spec,
        data,
        task,
        train_config(spec, progress),
        image_transform(model, spec, device),
        groups,
        device,
        cache=False,
        progress=progress,
    )
    if keep is not None:
        keep.model, keep.task = model, task.split
    mode = (
        "base"
        if spec.transfer == 0
        else "SnT"
        if spec.frozen == spec.transfer
        else "SnT+"
        if spec.frozen == 0
        else "partly frozen"
    )
    hyper = {
        "mode": mode,
        "transferred_units": units[: spec.transfer],
        "frozen_units": units[: spec.frozen],
        "source_classes": list(classes.source),
        "target_classes": list(classes.target),
        "source_model": record.get("key"),
        "source_cached": record.get("cached"),
        "source_val_accuracy": record.get("val_accuracy"),
        "source_test_accuracy": record.get("test_accuracy"),
        **fit.hyperparameters,
    }
    return network_result(
        spec,
        task,
        fit.score,
        hyperparameters=hyper,
        source_seconds=source_seconds,
        features_seconds=fit.seconds,
    )
