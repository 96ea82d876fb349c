"""What every strategy's implementation shares: the task's images, per-batch preprocessing +
augmentation, and training a whole network and scoring it into a :class:`RunResult`."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transferlab.data.augment import Augmenter, parse_augment
from transferlab.data.imageset import ImageSet
from transferlab.data.splits import TaskSplit, class_split, make_task
from transferlab.errors import TransferlabError
from transferlab.runs import RunResult, RunSpec
from transferlab.train import BatchTransform, TrainConfig, TrainOutcome, evaluate, train

# Random source/target halves (neither side named) are drawn once with this seed, so that the repeats of
# a study (different run seeds) vary the subset and the initialisation, never which classes are which.
HALVES_SEED = 0
PARTS = ("train", "val", "test")


@dataclass
class Fitted:
    """What a run trained, for ``transferlab fit`` to save (``fit_evaluate(..., keep=Fitted())`` fills it):
    the task it learned (its class names), and the trained ``model`` (a network that classifies images:
    the record's ``exports == "network"``) or the ``head`` fitted on a frozen backbone's features
    (``exports == "features"``)."""

    task: TaskSplit | None = None
    model: nn.Module | None = None
    head: object | None = None


@dataclass
class TaskData:
    """One side's images for a run: uint8 (N, H, W, C) tensors and re-indexed int64 labels per part."""

    split: TaskSplit
    images: dict[str, torch.Tensor]
    labels: dict[str, torch.Tensor]

    @property
    def num_classes(self) -> int:
        return len(self.split.classes)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise TransferlabError("device 'cuda' was asked for but no CUDA GPU is available; use cpu or auto")
    return torch.device(name)


def sides(spec: RunSpec, data: ImageSet):
    """The class split named by the spec (random halves drawn with HALVES_SEED when neither side is
    given), or None when the spec uses every class."""
    if (
        spec.source is None
        and spec.target is None
        and not spec.swap
        and spec.strategy_info.trains_on != "target"
    ):
        return None
    return class_split(data, spec.source, spec.target, seed=HALVES_SEED, swap=spec.swap)


def training_classes(spec: RunSpec, data: ImageSet) -> tuple[ImageSet, tuple[int, ...] | None]:
    """The dataset and classes (None = every class) whose images the spec's size subsamples: the spec's
    side, or the target side for a strategy that trains a source model first; a strategy module with its
    own ``training_classes`` (siamese: the source classes, possibly of ``source_dataset``) decides itself."""
    own = getattr(spec.strategy_info.implementation, "training_classes", None)
    if own is not None:
        return own(spec, data)
    trains_on = spec.strategy_info.trains_on
    split = sides(spec, data)
    return data, None if split is None else split.side("target" if trains_on == "target" else spec.side)


def load_task(
    spec: RunSpec,
    data: ImageSet,
    classes: Sequence[int] | None,
    *,
    size: float | None = None,
    per_class: int | None = None,
) -> TaskData:
    """Train/val/test images of ``classes`` (None = all) with the spec's holdouts and seed; the training
    subset is ``size``/``per_class`` if given, else the spec's."""
    if size is None and per_class is None:
        size, per_class = spec.size, spec.per_class
    split = make_task(
        data,
        classes,
        size=size,
        per_class=per_class,
        val_size=spec.val_size,
        test_per_class=spec.test_per_class,
        seed=spec.seed,
    )
    images = {
        part: torch.from_numpy(np.ascontiguousarray(data.images[getattr(split, part)])) for part in PARTS
    }
    labels = {part: torch.from_numpy(split.labels(data, part)) for part in PARTS}
    return TaskData(split, images, labels)


def target_task(spec: RunSpec, data: ImageSet) -> TaskData:
    """The task a non-snt run learns: every class, or the spec's ``side`` of its source/target split."""
    split = sides(spec, data)
    return load_task(spec, data, None if split is None else split.side(spec.side))


def image_transform(backbone: nn.Module, spec: RunSpec, device: torch.device) -> BatchTransform:
    """uint8 (N, H, W, C) batch -> the backbone's normalised float (N, 3, S, S) on ``device``, plus the
    spec's augmentation on training batches (applied after normalisation, see data/augment.py)."""
    names = parse_augment(spec.augment)
    side = spec.input_size or backbone.spec.input_size
    augmenter = Augmenter.from_names(names, side)

    def transform(batch: torch.Tensor, training: bool, generator: torch.Generator) -> torch.Tensor:
        x = backbone.preprocess(batch, size=spec.input_size, device=device)
        return augmenter(x, generator) if training and augmenter.active else x

    return transform


def train_config(
    spec: RunSpec,
    progress: bool,
    *,
    epochs: int | None = None,
    description: str = "",
    evaluate_start: bool = False,
) -> TrainConfig:
    """The spec's training settings; ``epochs`` overrides the spec's budget (snt's source_epochs)."""
    return TrainConfig(
        optimizer=spec.optimizer,
        lr=spec.lr,
        momentum=spec.momentum,
        weight_decay=spec.weight_decay,
        epochs=epochs or spec.epochs,
        steps=None if epochs else spec.steps,
        schedule=spec.schedule,
        batch_size=spec.batch_size,
        patience=spec.patience,
        bn_stats=spec.bn_stats,
        seed=spec.seed,
        progress=progress,
        evaluate_start=evaluate_start,
        description=description or f"{spec.strategy} {spec.backbone}",
    )


@dataclass
class NetworkScore:
    """A trained network's training record and held-out metrics."""

    outcome: TrainOutcome
    val_loss: float | None
    val_accuracy: float | None
    test_loss: float
    test_accuracy: float
    train_accuracy: float  # eval mode, the kept weights (the history's is a running mean in train mode)
    eval_seconds: float
    test_predictions: np.ndarray | None = None  # int64 (n_test,), the kept weights' predicted labels


def fit_network(
    model: nn.Module,
    task: TaskData,
    config: TrainConfig,
    transform: BatchTransform,
    param_groups: Sequence[dict] | None = None,
    penalty=None,
) -> NetworkScore:
    """Train ``model`` on the task's training images (validated at each check of its budget) and score
    the kept weights on the training and test images. ``penalty``: see :func:`transferlab.train.train`."""
    outcome = train(
        model,
        task.images["train"],
        task.labels["train"],
        config,
        val_inputs=task.images["val"],
        val_labels=task.labels["val"],
        param_groups=param_groups,
        transform=transform,
        penalty=penalty,
    )
    best = outcome.record_at(outcome.best_epoch)
    started = time.perf_counter()
    _, train_accuracy = evaluate(model, task.images["train"], task.labels["train"], transform=transform)
    predicted: list[torch.Tensor] = []
    test_loss, test_accuracy = evaluate(
        model, task.images["test"], task.labels["test"], transform=transform, predictions=predicted
    )
    return NetworkScore(
        outcome,
        best["val_loss"],
        best["val_accuracy"],
        test_loss,
        test_accuracy,
        train_accuracy,
        time.perf_counter() - started,
        torch.cat(predicted).numpy() if predicted else None,
    )


def network_result(spec: RunSpec, task: TaskData, score: NetworkScore, **extra) -> RunResult:
    """A RunResult for a trained network; ``extra`` sets further fields (hyperparameters, timings)."""
    return RunResult(
        spec=spec.to_dict(),
        test_accuracy=score.test_accuracy,
        test_loss=score.test_loss,
        val_accuracy=score.val_accuracy,
        val_loss=score.val_loss,
        train_accuracy=score.train_accuracy,
        epochs_run=score.outcome.epochs_run,
        best_epoch=score.outcome.best_epoch,
        history=score.outcome.history,
        fit_seconds=score.outcome.seconds,
        eval_seconds=score.eval_seconds,
        budget=score.outcome.budget_record(),
        test_confusion=confusion_record(task.split, task.labels["test"], score.test_predictions),
        **task_fields(task.split),
        **extra,
    )


# A confusion matrix is stored with each result up to this many classes (its size grows as the square).
MAX_CONFUSION_CLASSES = 100


def confusion_record(split: TaskSplit, true, predicted) -> dict:
    """The test confusion counts of a run, for the report: ``{"classes": names, "counts": [[int]]}`` with
    row = true class, column = predicted class, both in the run's label order; {} when the predictions are
    unknown or there are more than MAX_CONFUSION_CLASSES classes."""
    if predicted is None or len(split.classes) > MAX_CONFUSION_CLASSES:
        return {}
    n = len(split.classes)
    true = np.asarray(true, dtype=np.int64).reshape(-1)
    predicted = np.asarray(predicted, dtype=np.int64).reshape(-1)
    counts = np.bincount(true * n + predicted, minlength=n * n).reshape(n, n)
    return {"classes": list(split.class_names), "counts": counts.tolist()}


def task_fields(split: TaskSplit) -> dict:
    """The RunResult fields that describe the data a run saw (the indices themselves included)."""
    return {
        "n_train": len(split.train),
        "n_val": len(split.val),
        "n_test": len(split.test),
        "n_classes": len(split.classes),
        "size_label": split.size_label,
        "indices_hash": split.indices_hash(),
        "indices": split.indices_record(),
    }
