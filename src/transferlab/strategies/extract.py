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
from transferlab.errors import TransferlabError
from transferlab.features import cached_features
from transferlab.models.heads import TORCH_HEADS, make_head
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import Fitted, confusion_record, resolve_device, sides, task_fields

# Runs that agree on these fields read the same cached features, training subset and mini-batch order, so
# their fc1-3/gap heads can train in one batched pass (models/batched_heads.py); heads, activations,
# learning rates, weight decay, epochs and patience may differ.
BATCH_FIELDS = (
    "dataset",
    "backbone",
    "input_size",
    "layer",
    "pool",
    "device",
    "source",
    "target",
    "side",
    "swap",
    "size",
    "per_class",
    "val_size",
    "test_per_class",
    "seed",
    "batch_size",
    "optimizer",
)


def _task_features(spec: RunSpec, data: ImageSet, progress: bool, memo: dict | None = None):
    """(task, features per part, labels per part, seconds spent getting the features). ``memo`` maps
    (part, indices) to arrays already read, so runs of one batch share the very same arrays."""
    split = sides(spec, data)
    task = make_task(
        data,
        None if split is None else split.side(spec.side),
        size=spec.size,
        per_class=spec.per_class,
        val_size=spec.val_size,
        test_per_class=spec.test_per_class,
        seed=spec.seed,
    )
    memo = {} if memo is None else memo
    device = resolve_device(spec.device)
    started = time.perf_counter()
    features, labels = {}, {}
    for part in ("train", "val", "test"):
        indices = getattr(task, part)
        key = (part, indices.tobytes())
        if key not in memo:
            memo[key] = (
                cached_features(
                    data,
                    indices,
                    spec.backbone,
                    layer=spec.layer,
                    pool=spec.pool,
                    size=spec.input_size,
                    device=device,
                    progress=progress,
                ),
                task.labels(data, part),
            )
        features[part], labels[part] = memo[key]
    return task, features, labels, time.perf_counter() - started


def _head(spec: RunSpec):
    return make_head(
        spec.head,
        activation=spec.activation or "relu",
        init=spec.init or "uniform",
        dropout=spec.dropout,
        lr=spec.lr,
        weight_decay=spec.weight_decay,
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        patience=spec.patience,
        optimizer=spec.optimizer,
        seed=spec.seed,
        steps=spec.steps,
        schedule=spec.schedule,
        C=spec.C,
    )


def _score(
    spec: RunSpec, head, task, features: dict, labels: dict, features_seconds: float, fit_seconds: float
) -> RunResult:
    """The RunResult of a fitted head: validation, test and training metrics with the kept weights."""
    started = time.perf_counter()
    val = head.score_and_loss(features["val"], labels["val"]) if len(labels["val"]) > 0 else (None, None)
    test = head.score_and_loss(features["test"], labels["test"])
    metrics = {
        "val_accuracy": val[0],
        "val_loss": val[1],
        "test_accuracy": test[0],
        "test_loss": test[1],
        "train_accuracy": head.score(features["train"], labels["train"]),
    }
    history = getattr(head, "history_", [])
    hyper = {"feature_dim": int(np.prod(features["train"].shape[1:]))}
    if spec.head == "svm" and spec.C is None:
        hyper.update(C=head.C_, cv_folds=head.cv_folds_, cv_scores=head.cv_scores_)
    elif spec.head in ("svm", "logreg"):  # C from the spec (logreg's default 1): recorded, nothing searched
        hyper["C"] = float(head.C)
    if getattr(head, "batched_with_", 1) > 1:
        hyper["batched_with"] = head.batched_with_  # heads trained in the same pass (fit_seconds is a share)
    return RunResult(
        spec=spec.to_dict(),
        **metrics,
        **task_fields(task),
        history=history,
        epochs_run=history[-1]["epoch"] if history else 0,
        budget=getattr(head, "budget_", {}),
        test_confusion=confusion_record(task, labels["test"], head.predict(features["test"])),
        best_epoch=getattr(head, "best_epoch_", 0) if spec.head in TORCH_HEADS else 0,
        hyperparameters=hyper,
        features_seconds=features_seconds,
        fit_seconds=fit_seconds,
        eval_seconds=time.perf_counter() - started,
    )


def fit_evaluate(
    spec: RunSpec, data: ImageSet, progress: bool = False, keep: Fitted | None = None
) -> RunResult:
    """Features of the task's train/val/test images from ``spec.backbone`` at ``spec.layer``, then
    ``spec.head`` fitted on the training features and scored on validation and test. ``keep``: a :class:`Fitted`
    that receives the fitted ``head`` and the ``task`` (for ``transferlab fit``)."""
    task, features, labels, features_seconds = _task_features(spec, data, progress)
    head = _head(spec)
    started = time.perf_counter()
    head.fit(features["train"], labels["train"], eval_set=(features["val"], labels["val"]))
    if keep is not None:
        keep.head, keep.task = head, task
    return _score(spec, head, task, features, labels, features_seconds, time.perf_counter() - started)


def batch_key(spec: RunSpec) -> tuple | None:
    """Equal keys: runs whose heads can train in one batched pass (fc1-3/gap without dropout on the same
    features, subset and batch order); None for a run that trains alone."""
    if spec.head not in TORCH_HEADS or spec.dropout:
        return None
    return tuple(getattr(spec, name) for name in BATCH_FIELDS)


def fit_evaluate_batch(specs: list[RunSpec], data: ImageSet, progress: bool = False) -> list:
    """``fit_evaluate`` of each resolved spec, with the torch heads trained together by
    :func:`transferlab.models.batched_heads.fit_heads` (each result equals its single run's to float32
    rounding). Features are read once per distinct part. Per spec: a RunResult, or the exception its
    single run would raise (TransferlabError, TrainingFailed)."""
    from transferlab.models.batched_heads import fit_heads

    if any(batch_key(spec) is None for spec in specs):
        unbatched = next(spec.head for spec in specs if batch_key(spec) is None)
        raise TransferlabError(
            f"only extract runs with fc1-3/gap heads without dropout train in a batch, not {unbatched!r}"
        )
    outcomes: list[RunResult | Exception | None] = [None] * len(specs)
    memo: dict = {}
    prepared = []
    for i, spec in enumerate(specs):
        try:
            prepared.append((i, spec, *_task_features(spec, data, progress, memo), _head(spec)))
        except TransferlabError as exc:
            outcomes[i] = exc
    errors = fit_heads(
        [p[6] for p in prepared],
        [(p[3]["train"], p[4]["train"]) for p in prepared],
        [(p[3]["val"], p[4]["val"]) for p in prepared],
    )
    for (i, spec, task, features, labels, seconds, head), error in zip(prepared, errors, strict=True):
        outcomes[i] = error or _score(spec, head, task, features, labels, seconds, head.fit_seconds_)
    return outcomes
