"""``extract``: a frozen pretrained backbone turns every image into a feature vector once (cached by
content, so every head, learning rate and size subset of a sweep reads the same file) and a head is
trained on the features. ``layer`` picks the unit whose output is the feature (default the last unit,
what the backbone's own classifier reads); an earlier unit gives more generic features. ``pool`` is how
a feature map becomes a vector: global average ("avg") or "flatten" (the VGG16 study's 2x2x512 = 2,048).

The feature cache stores vectors, never spatial maps, so the ``gap`` head sees already pooled features
and is a linear softmax head with input dropout here (see models/heads.py)."""

from __future__ import annotations

import time

import numpy as np

from transferlab.data.imageset import ImageSet
from transferlab.data.splits import make_task
from transferlab.features import cached_features
from transferlab.models.heads import TORCH_HEADS, make_head
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import Strategy, resolve_device, sides, task_fields

HEADS = ("logreg", "fc1", "fc2", "fc3", "gap", "svm")


def _layer(value: str | None) -> int | str | None:
    """A unit given on the command line as '3' means index 3; anything else is a unit name."""
    return int(value) if value is not None and value.isdigit() else value


def fit_evaluate(spec: RunSpec, data: ImageSet, progress: bool = False, keep: dict | None = None) -> RunResult:  # fmt: skip
    """Features of the task's train/val/test images from ``spec.backbone`` at ``spec.layer``, then
    ``spec.head`` fitted on the training features and scored on validation and test. ``keep``: a dict
    that receives the fitted ``head`` and the ``task`` (for ``transferlab fit``)."""
    split = sides(spec, data)
    task = make_task(data, None if split is None else split.side(spec.side), size=spec.size,
                     per_class=spec.per_class, val_size=spec.val_size, test_per_class=spec.test_per_class,
                     seed=spec.seed)  # fmt: skip
    device = resolve_device(spec.device)
    started = time.perf_counter()
    features = {
        part: cached_features(data, getattr(task, part), spec.backbone, layer=_layer(spec.layer), pool=spec.pool,
                              size=spec.input_size, device=device, progress=progress)
        for part in ("train", "val", "test")
    }  # fmt: skip
    features_seconds = time.perf_counter() - started
    labels = {part: task.labels(data, part) for part in ("train", "val", "test")}
    head = make_head(spec.head, activation=spec.activation or "relu", init=spec.init or "uniform",
                     dropout=spec.dropout, lr=spec.lr, weight_decay=spec.weight_decay, epochs=spec.epochs,
                     batch_size=spec.batch_size, patience=spec.patience, optimizer=spec.optimizer,
                     seed=spec.seed)  # fmt: skip
    started = time.perf_counter()
    head.fit(features["train"], labels["train"], eval_set=(features["val"], labels["val"]))
    fit_seconds = time.perf_counter() - started
    if keep is not None:
        keep.update(head=head, task=task)
    started = time.perf_counter()
    has_val = len(labels["val"]) > 0
    metrics = {
        "val_accuracy": head.score(features["val"], labels["val"]) if has_val else None,
        "val_loss": head.loss(features["val"], labels["val"]) if has_val else None,
        "test_accuracy": head.score(features["test"], labels["test"]),
        "test_loss": head.loss(features["test"], labels["test"]),
        "train_accuracy": head.score(features["train"], labels["train"]),
    }
    history = getattr(head, "history_", [])
    hyper = {"feature_dim": int(np.prod(features["train"].shape[1:]))}
    if spec.head == "svm":
        hyper.update(C=head.C_, cv_folds=head.cv_folds_, cv_scores=head.cv_scores_)
    return RunResult(
        spec=spec.to_dict(), **metrics, **task_fields(task), history=history,
        epochs_run=len(history), best_epoch=getattr(head, "best_epoch_", 0) if spec.head in TORCH_HEADS else 0,
        hyperparameters=hyper, features_seconds=features_seconds, fit_seconds=fit_seconds,
        eval_seconds=time.perf_counter() - started,
    )  # fmt: skip


STRATEGY = Strategy(
    name="extract",
    summary="frozen pretrained backbone -> cached features -> a head (fc1-3, gap, svm, logreg)",
    fit_evaluate=fit_evaluate,
    heads=HEADS,
    default_backbone="efficientnet_lite0.in1k",
)
