"""``siamese``: one-shot learning of classes never seen in training (Koch et al. 2015; the VGG16 study's
Siamese network, seeds 000/001), on a pretrained backbone.

Protocols:
(a) one dataset: the twin network learns same/different on the ``source`` classes and is tested on N-way
    one-shot tasks of the ``target`` classes (disjoint; an overlap is refused: it would not be one-shot).
    The study's first approach: 3 training classes, 4 unseen.
(b) ``source_dataset`` names another dataset: its classes (``source``, default all) train the network and
    the tasks come from ``dataset``'s ``target`` classes (default all). The study's second approach.

Data: the training pool is the training classes' training images (``size`` / ``per_class`` of each
class's pool); ``pairs`` balanced pairs are drawn from it once (seeded) and seen every epoch. Validation
= balanced pairs (as many as the training pairs, at most :data:`EVAL_PAIRS`) of the training classes'
held-out validation images; their loss picks the epoch (patience defaults to the epoch count: run every
epoch, keep the best). Test = ``tasks`` one-shot tasks drawn from the target classes' test images (and
as many test pairs as validation pairs, for the test loss). The target classes are never seen before the test.

Backbone: frozen (``frozen`` unset, or at least the feature layer) -> the twins train on cached features
(``features.cached_features``: one extraction per image set, shared with every other run); otherwise the
units after ``frozen`` train end to end at ``backbone_lr``. Reported (``RunResult.metrics``): one-shot
accuracy with its 95% Wilson interval, chance 1/N, and on exactly the same tasks the few-shot baselines of
:mod:`transferlab.fewshot`: Koch's 1-nearest neighbour on raw pixels and on the pretrained backbone's
features, nearest class mean (``protonet``) and SimpleShot (centred on the training classes' mean feature);
the same for N-way ``K_SHOT``-shot tasks (``*_5shot``; the twins score a class by their mean logit over its
supports).

Held-out validation classes (``val_classes``, Koch's protocol): the twins first train on the other training
classes and stop on the loss of pairs of the held-out ones; their one-shot accuracy on tasks of those classes
is the run's ``val_accuracy`` (what a study chooses lr, head and layer on), and the baselines are scored on
the same validation tasks (``val_*``). Then the twins retrain on every training class for the chosen number
of steps (no validation left) and are tested. Measured (benchmarks/results/one_shot.md): early stopping
ends the first stage after 20-160 steps; unseen-class validation loss rises soon after.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time

import numpy as np
import torch
from torch import nn

from transferlab import fewshot
from transferlab.data.augment import parse_augment
from transferlab.data.datasets import load_dataset
from transferlab.data.imageset import ImageSet
from transferlab.data.splits import (
    INDICES_ENCODING,
    TaskSplit,
    class_split,
    decode_indices,
    encode_indices,
    make_task,
    record_indices_hash,
    resolve_classes,
)
from transferlab.errors import TransferlabError
from transferlab.features import cached_features
from transferlab.fewshot import FewShotTasks
from transferlab.models.backbone import unit_index
from transferlab.models.registry import create_backbone, get_backbone_entry, list_backbones
from transferlab.runs import RunResult, RunSpec
from transferlab.siamese import (
    OneShotTasks,
    SiameseNet,
    accuracy_metrics,
    embeddings,
    one_shot_correct,
    sample_pairs,
    sample_tasks,
    support_scores,
    task_scores,
)
from transferlab.strategies.base import HALVES_SEED, image_transform, resolve_device, train_config
from transferlab.train import evaluate, seeded, train

CENTRE_PAIRS = 256  # training pairs whose mean similarity sets the initial bias (SiameseNet.centre_bias)
# Validation pairs (the epoch is chosen on their loss) and test pairs (the test loss): as many as the
# training pairs, at most this many (each costs two images through the backbone per epoch end to end).
EVAL_PAIRS = 500
# Salts of the seeded draws, so that training pairs, validation pairs, tasks and test pairs are independent.
_TRAIN_PAIRS, _VAL_PAIRS, _TASKS, _TEST_PAIRS, _FIT_PAIRS, _VAL_TASKS, _K_TASKS = 11, 12, 13, 14, 15, 16, 17
K_SHOT = 5  # the few-shot protocol scored beside one-shot: N-way 5-shot tasks of the test classes


def class_sets(spec: RunSpec, data: ImageSet) -> tuple[ImageSet, tuple[int, ...], tuple[int, ...]]:
    """(the dataset the network trains on, its training classes, the test classes of ``data``).

    Protocol (a): the spec's source/target split of ``data`` (disjoint; random halves when neither is
    named). Protocol (b): ``source`` classes of ``source_dataset`` (default all) and ``target`` classes of
    ``data`` (default all)."""
    if spec.source_dataset is None or spec.source_dataset == spec.dataset:
        split = class_split(data, spec.source, spec.target, seed=HALVES_SEED, swap=spec.swap)
        return data, split.source, split.target
    source_data = load_dataset(spec.source_dataset)
    train_classes = (
        range(source_data.num_classes)
        if spec.source is None
        else resolve_classes(source_data, spec.source, f"source classes of {spec.source_dataset}")
    )
    test_classes = (
        range(data.num_classes)
        if spec.target is None
        else resolve_classes(data, spec.target, f"target classes of {spec.dataset}")
    )
    for name, classes in (("training classes", train_classes), ("test classes", test_classes)):
        if len(classes) < 2:
            raise TransferlabError(f"siamese needs at least 2 {name}; got {len(classes)}")
    return source_data, tuple(train_classes), tuple(test_classes)


def training_classes(spec: RunSpec, data: ImageSet) -> tuple[ImageSet, tuple[int, ...]]:
    """The dataset and classes the twins train on (the ones the spec's size subsamples)."""
    source_data, train_classes, _ = class_sets(spec, data)
    return source_data, train_classes


def _pairs(
    labels: np.ndarray, count: int, seed: int, salt: int, what: str, names
) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        pairs, same = sample_pairs(labels, count, np.random.default_rng([seed, salt]), names)
    except TransferlabError as exc:
        raise TransferlabError(f"{what}: {exc}") from None
    return torch.from_numpy(pairs), torch.from_numpy(same)


class _Encoder(nn.Module):
    """images (B, 3, S, S) -> the backbone's features (B, D) at ``layer`` (for the end-to-end twins)."""

    def __init__(self, backbone: nn.Module, layer: int, pool: str) -> None:
        super().__init__()
        self.backbone, self.layer, self.pool = backbone, layer, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x, self.layer, self.pool)


def fit_evaluate(spec: RunSpec, data: ImageSet, progress: bool = False) -> RunResult:
    """Train the twins on pairs of the training classes (with ``val_classes``: first without them, to choose
    the number of steps on their one-shot tasks, then on every training class), score N-way one-shot and
    5-shot tasks of the test classes, and the few-shot baselines on exactly the same tasks."""
    device = resolve_device(spec.device)
    if not get_backbone_entry(spec.backbone).pretrained:
        raise TransferlabError(
            f"siamese needs a pretrained backbone, and {spec.backbone} has random weights; "
            f"pretrained: {', '.join(list_backbones(pretrained=True))}"
        )
    source_data, train_classes, test_classes = class_sets(spec, data)
    held_out = _validation_classes(spec, source_data, train_classes)
    train_task = make_task(
        source_data,
        train_classes,
        size=spec.size,
        per_class=spec.per_class,
        val_size=spec.val_size,
        test_per_class=spec.test_per_class,
        seed=spec.seed,
    )
    test_task = make_task(
        data, test_classes, size=1.0, val_size=0, test_per_class=spec.test_per_class, seed=spec.seed
    )
    n_way = spec.n_way or len(test_classes)
    test_labels = test_task.labels(data, "test")
    tasks = sample_tasks(
        test_labels, n_way, spec.tasks, np.random.default_rng([spec.seed, _TASKS]), test_task.class_names
    )
    shots, shots_note = _k_shot_tasks(test_labels, n_way, spec)

    labels = {part: train_task.labels(source_data, part) for part in ("train", "val")}
    names = train_task.class_names
    train_pairs, train_same = _pairs(
        labels["train"], spec.pairs, spec.seed, _TRAIN_PAIRS, f"training images of {source_data.name}", names
    )
    test_pairs, test_same = _pairs(
        test_labels,
        min(EVAL_PAIRS, spec.pairs),
        spec.seed,
        _TEST_PAIRS,
        f"test images of {data.name}",
        test_task.class_names,
    )
    indices_hash = _indices_hash(train_task, test_task, tasks)
    indices = _indices_record(train_task, test_task, tasks)
    fit_pairs = fit_same = val_pairs = val_same = val_tasks = None
    if held_out:  # Koch's protocol: validation pairs and tasks of classes the twins do not train on
        fit = np.flatnonzero(~np.isin(labels["train"], held_out))
        pairs, fit_same = _pairs(
            labels["train"][fit],
            spec.pairs,
            spec.seed,
            _FIT_PAIRS,
            f"training images of {source_data.name} less the validation classes",
            names,
        )
        fit_pairs = torch.from_numpy(fit)[pairs]
        val = np.flatnonzero(np.isin(labels["val"], held_out))
        pairs, val_same = _pairs(
            labels["val"][val],
            min(EVAL_PAIRS, spec.pairs),
            spec.seed,
            _VAL_PAIRS,
            f"validation images of the validation classes of {source_data.name}",
            names,
        )
        val_pairs = torch.from_numpy(val)[pairs]
        drawn = sample_tasks(
            labels["val"][val],
            min(n_way, len(held_out)),
            spec.tasks,
            np.random.default_rng([spec.seed, _VAL_TASKS]),
            names,
        )
        val_tasks = OneShotTasks(val[drawn.query], val[drawn.candidates], drawn.answer)
    elif len(labels["val"]):
        val_pairs, val_same = _pairs(
            labels["val"],
            min(EVAL_PAIRS, spec.pairs),
            spec.seed,
            _VAL_PAIRS,
            f"validation images of {source_data.name}",
            names,
        )

    images = {}  # dataset indices of the images each part reads, and positions re-indexed into them
    images["train"], train_positions = _used_images(
        train_task.train, train_pairs, *([fit_pairs] if held_out else [])
    )
    train_pairs, fit_pairs = train_positions[0], train_positions[1] if held_out else None
    extra = [shots.support, shots.query] if shots is not None else []
    images["test"], out = _used_images(test_task.test, tasks.query, tasks.candidates, test_pairs, *extra)
    tasks, test_pairs = OneShotTasks(out[0].numpy(), out[1].numpy(), tasks.answer), out[2]
    if shots is not None:
        shots = FewShotTasks(out[3].numpy(), out[4].numpy(), shots.answer)
    images["val"] = train_task.val[:0]
    if val_pairs is not None:
        extra = [val_tasks.query, val_tasks.candidates] if held_out else []
        images["val"], out = _used_images(train_task.val, val_pairs, *extra)
        val_pairs = out[0] + len(images["train"])  # positions in the table of train + val images
        if held_out:
            val_tasks = OneShotTasks(out[1].numpy(), out[2].numpy(), val_tasks.answer)

    n_val_pairs = 0 if val_same is None else len(val_same)
    units, layer, end_to_end = _plan(spec)
    started = time.perf_counter()
    # Pretrained features of every part: the twins' input when every used unit is frozen, and in both modes
    # the baselines' (test, validation) and SimpleShot's centre (the training classes' mean feature).
    parts = (("test", data), ("train", source_data), ("val", source_data))
    features = {
        part: cached_features(
            image_set,
            images[part],
            spec.backbone,
            layer=spec.layer,
            pool=spec.pool,
            size=spec.input_size,
            device=device,
            progress=progress,
        )
        for part, image_set in parts
    }
    features_seconds = time.perf_counter() - started
    setup = (spec, source_data, data, images, features, device, units, layer, end_to_end)
    config = train_config(spec, progress, description=f"siamese {spec.backbone}")
    metrics: dict[str, float] = {}
    selection: dict = {}
    if held_out:
        chooser = _TwinSetup(*setup)
        fitted = _fit(chooser, fit_pairs, fit_same, config, val_pairs, val_same)
        h_val, h_test = chooser.embeddings_of("val").cpu(), chooser.embeddings_of("test").cpu()
        net = chooser.net.cpu()
        metrics.update(
            accuracy_metrics("val_one_shot", one_shot_correct(task_scores(net, h_val, val_tasks), val_tasks))
        )
        # Reported only, never chosen on: what training on the fewer classes alone gives on the test tasks.
        metrics.update(
            accuracy_metrics(
                "one_shot_before_refit", one_shot_correct(task_scores(net, h_test, tasks), tasks)
            )
        )
        training_images = source_data.labels[images["train"]]
        fit_centre = features["train"][~np.isin(training_images, [train_classes[i] for i in held_out])].mean(
            0
        )
        metrics.update(
            _baselines(
                "val_",
                "",
                FewShotTasks.from_one_shot(val_tasks),
                source_data.images[images["val"]],
                features["val"],
                fit_centre,
            )
        )
        budget = fitted.budget
        refit = (
            dict(epochs=fitted.best_epoch)
            if budget.rule == "epochs"
            else dict(epochs=None, steps=fitted.best_epoch * budget.steps_per_epoch)
        )
        selection = {
            "validation_classes": [names[i] for i in held_out],
            "fit_classes": [n for i, n in enumerate(names) if i not in held_out],
            "budget": fitted.budget_record(),
            "best_epoch": fitted.best_epoch,
            "refit": refit,
            "val_one_shot_way": val_tasks.n_way,
            "history": fitted.history,
        }
        config = dataclasses.replace(config, patience=None, **refit)
        val_pairs = val_same = None  # the refit has no validation left: it trains for the chosen length
    twins = _TwinSetup(*setup)
    outcome = _fit(twins, train_pairs, train_same, config, val_pairs, val_same)

    started = time.perf_counter()
    _, train_accuracy = evaluate(twins.net, train_pairs, train_same, transform=twins.pair_transform)
    h = twins.embeddings_of("test").to("cpu")
    net = twins.net.cpu()
    correct = one_shot_correct(task_scores(net, h, tasks), tasks)
    z = net.similarity(h[test_pairs[:, 0]], h[test_pairs[:, 1]]).detach()
    test_loss = float(nn.functional.binary_cross_entropy_with_logits(z, test_same.float()))
    pixels = data.images[images["test"]]
    centre = features["train"].mean(0)  # SimpleShot centres on the training (base) classes' mean feature
    metrics.update(
        {
            **accuracy_metrics("one_shot", correct),
            "chance": 1.0 / n_way,
            "n_way": n_way,
            "tasks": len(tasks),
            **_baselines("", "", FewShotTasks.from_one_shot(tasks), pixels, features["test"], centre),
            "test_pair_accuracy": float(((z > 0).long() == test_same).float().mean()),
        }
    )
    if shots is not None:
        metrics.update(
            accuracy_metrics(f"siamese_{K_SHOT}shot", one_shot_correct(support_scores(net, h, shots), shots))
        )
        metrics.update(_baselines("", f"_{K_SHOT}shot", shots, pixels, features["test"], centre))
    best = outcome.record_at(outcome.best_epoch)
    if held_out:
        val_accuracy, val_loss = (
            metrics["val_one_shot_accuracy"],
            fitted.record_at(fitted.best_epoch)["val_loss"],
        )
    else:
        val_accuracy, val_loss = best["val_accuracy"], best["val_loss"]
    return RunResult(
        spec=spec.to_dict(),
        test_accuracy=metrics["one_shot_accuracy"],
        test_loss=test_loss,
        val_accuracy=val_accuracy,
        val_loss=val_loss,
        train_accuracy=train_accuracy,
        n_train=len(train_task.train),
        n_val=len(train_task.val),
        n_test=len(test_task.test),
        n_classes=n_way,
        size_label=train_task.size_label,
        indices_hash=indices_hash,
        indices=indices,
        epochs_run=outcome.epochs_run,
        best_epoch=outcome.best_epoch,
        history=outcome.history,
        budget=outcome.budget_record(),
        hyperparameters={
            "mode": twins.mode,
            "feature_dim": twins.feature_dim,
            "frozen_units": twins.frozen_units,
            "trained_units": twins.trained_units,
            "source_dataset": source_data.name,
            "training_classes": list(names),
            "test_classes": list(test_task.class_names),
            "pairs": len(train_pairs),
            "val_pairs": n_val_pairs,
            "test_pairs": len(test_pairs),
            "k_shot_tasks": shots_note,
            **({"selection": selection} if selection else {}),
        },
        metrics=metrics,
        features_seconds=features_seconds,
        fit_seconds=outcome.seconds + (fitted.seconds if held_out else 0.0),
        eval_seconds=time.perf_counter() - started,
    )


def _fit(twins: _TwinSetup, pairs: torch.Tensor, same: torch.Tensor, config, val_pairs, val_same):
    """Train ``twins.net`` on ``pairs`` (its output bias first centred on them); validated on ``val_pairs``."""
    generator = torch.Generator().manual_seed(twins.spec.seed)
    twins.net.centre_bias(twins.pair_transform(pairs[:CENTRE_PAIRS], False, generator))
    return train(
        twins.net,
        pairs,
        same,
        config,
        val_inputs=val_pairs,
        val_labels=val_same,
        param_groups=twins.groups,
        transform=twins.pair_transform,
    )


def _baselines(
    prefix: str,
    suffix: str,
    tasks: FewShotTasks,
    pixels: np.ndarray,
    features: np.ndarray,
    centre: np.ndarray,
) -> dict[str, float]:
    """Accuracy + Wilson interval of each few-shot baseline on ``tasks``: 1-NN on raw pixels (Koch's) and,
    on the pretrained features, 1-NN, nearest class mean (protonet) and SimpleShot (centred on ``centre``)."""
    return {
        **accuracy_metrics(f"{prefix}nn_pixels{suffix}", fewshot.nearest_neighbour_correct(pixels, tasks)),
        **accuracy_metrics(
            f"{prefix}nn_features{suffix}", fewshot.nearest_neighbour_correct(features, tasks)
        ),
        **accuracy_metrics(f"{prefix}protonet{suffix}", fewshot.nearest_centroid_correct(features, tasks)),
        **accuracy_metrics(
            f"{prefix}simpleshot{suffix}", fewshot.simpleshot_correct(features, tasks, centre)
        ),
    }


def _k_shot_tasks(labels: np.ndarray, n_way: int, spec: RunSpec) -> tuple[FewShotTasks | None, str]:
    """The N-way ``K_SHOT``-shot test tasks (as many as the one-shot ones, seeded) and a note for the result;
    None when a test class has fewer than K + 1 images (the one-shot tasks need only 2)."""
    fewest = int(np.bincount(labels).min())
    if fewest < K_SHOT + 1:
        return None, f"none: a test class has {fewest} images, {K_SHOT}-shot tasks need {K_SHOT + 1}"
    tasks = fewshot.sample_fewshot_tasks(
        labels, n_way, K_SHOT, spec.tasks, np.random.default_rng([spec.seed, _K_TASKS])
    )
    return tasks, f"{len(tasks)} {n_way}-way {K_SHOT}-shot tasks"


def _validation_classes(
    spec: RunSpec, source_data: ImageSet, train_classes: tuple[int, ...]
) -> tuple[int, ...]:
    """Label indices (positions in ``train_classes``) of the spec's held-out validation classes; () without."""
    if spec.val_classes is None:
        return ()
    chosen = resolve_classes(source_data, spec.val_classes, f"val_classes of {source_data.name}")
    outside = [source_data.class_names[c] for c in chosen if c not in train_classes]
    training = ", ".join(source_data.class_names[c] for c in train_classes)
    if outside:
        raise TransferlabError(
            f"val_classes {', '.join(outside)} are not training classes of this run ({training}); "
            "hold out training classes only (test classes stay unseen until the test)"
        )
    if len(set(chosen)) < 2 or len(train_classes) - len(set(chosen)) < 2:
        raise TransferlabError(
            f"val_classes={spec.val_classes!r} holds out {len(set(chosen))} of the "
            f"{len(train_classes)} training classes ({training}); give at least 2 and leave "
            "at least 2 to train on (pairs of different classes need two)"
        )
    return tuple(train_classes.index(c) for c in dict.fromkeys(chosen))


def _used_images(pool: np.ndarray, *positions) -> tuple[np.ndarray, list[torch.Tensor]]:
    """(dataset indices of the images to read, ``positions`` re-indexed into them, as int64 tensors) for
    positions (arrays or tensors) drawn from
    ``pool``: the whole pool (one cache entry shared by every run on it), unless the pairs or tasks touch
    less than half of it; then only those images (a run on all 18,000 training images with 2,000 pairs
    extracts at most 4,000)."""
    used = np.unique(np.concatenate([np.asarray(p).ravel() for p in positions]))
    if 2 * len(used) >= len(pool):
        return pool, [torch.as_tensor(np.asarray(p)) for p in positions]
    return pool[used], [torch.as_tensor(np.searchsorted(used, np.asarray(p))) for p in positions]


_TASK_ARRAYS = ("query", "candidates", "answer")


def _indices_hash(train_task: TaskSplit, test_task: TaskSplit, tasks: OneShotTasks) -> str:
    """sha256 of the training/validation images, the test pool and the tasks drawn from it."""
    arrays = [getattr(tasks, name) for name in _TASK_ARRAYS]
    return _combined_hash(train_task.indices_hash(), test_task.indices_hash(), arrays)


def _combined_hash(train_hash: str, test_hash: str, task_arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256(train_hash.encode())
    h.update(test_hash.encode())
    for array in task_arrays:  # candidates (T, N) hash as their row-major values
        h.update(np.ascontiguousarray(array, dtype="<i8").tobytes())
    return h.hexdigest()


def _indices_record(train_task: TaskSplit, test_task: TaskSplit, tasks: OneShotTasks) -> dict:
    """RunResult.indices of a siamese run: both splits' records and the one-shot tasks (positions in the
    test split's ``test`` images), compact; :func:`indices_hash_of_record` re-hashes them."""
    return {
        "encoding": INDICES_ENCODING,
        "train_split": train_task.indices_record(),
        "test_split": test_task.indices_record(),
        "n_way": tasks.n_way,
        **{name: encode_indices(getattr(tasks, name)) for name in _TASK_ARRAYS},
    }


def indices_hash_of_record(record: dict) -> str:
    """The ``indices_hash`` of a siamese run from its saved ``indices`` record."""
    return _combined_hash(
        record_indices_hash(record["train_split"]),
        record_indices_hash(record["test_split"]),
        [decode_indices(record[name]) for name in _TASK_ARRAYS],
    )


class _TwinSetup:
    """The twin network and what it reads: cached features (every used unit frozen) or images through a
    partly trainable backbone. ``pair_transform(pairs (B, 2) positions in train+val, training, generator)``
    gives the network's input (B, 2, ...); ``groups`` are the optimizer's parameter groups."""

    def __init__(
        self,
        spec: RunSpec,
        source_data: ImageSet,
        data: ImageSet,
        images: dict[str, np.ndarray],
        features: dict[str, np.ndarray],
        device: torch.device,
        units: list[str],
        layer: int,
        end_to_end: bool,
    ) -> None:
        self.spec, self.data, self.source_data, self.images, self.device = (
            spec,
            data,
            source_data,
            images,
            device,
        )
        self.feature_dim = int(features["test"].shape[1])
        self.mode = "end to end" if end_to_end else "cached features"
        if not end_to_end:
            self.frozen_units, self.trained_units = units[:layer], []
            self._features = features
            self.table = torch.from_numpy(np.concatenate([features["train"], features["val"]])).to(device)
            with seeded(spec.seed):
                self.net = SiameseNet(self.feature_dim, spec.hidden, head=spec.head).to(device)
            self.groups = None
            return
        backbone = create_backbone(spec.backbone).freeze(spec.frozen).to(device)
        self.frozen_units, self.trained_units = units[: spec.frozen], units[spec.frozen : layer]
        with seeded(spec.seed):
            encoder = _Encoder(backbone, layer, spec.pool)
            self.net = SiameseNet(self.feature_dim, spec.hidden, encoder, head=spec.head).to(device)
        self.table = torch.from_numpy(source_data.images[np.concatenate([images["train"], images["val"]])])
        self._images = image_transform(backbone, spec, device)
        backbone_params = {id(p) for p in backbone.parameters()}
        self.groups = [
            {"params": [p for p in self.net.parameters() if id(p) not in backbone_params], "lr": spec.lr},
            {"params": backbone.trainable_parameters(), "lr": spec.backbone_lr},
        ]

    def pair_transform(self, pairs: torch.Tensor, training: bool, generator: torch.Generator) -> torch.Tensor:
        if self.mode == "cached features":
            return self.table[pairs.to(self.table.device)]
        x = self._images(self.table[pairs.reshape(-1)], training, generator)
        return x.reshape(pairs.shape[0], 2, *x.shape[1:])

    def embeddings_of(self, part: str) -> torch.Tensor:
        """h (P, hidden) of every image of ``part`` ("test": the test pool; "val": the validation images), in
        eval mode."""
        if self.mode == "cached features":
            return embeddings(self.net, torch.from_numpy(self._features[part]).to(self.device))
        image_set = self.data if part == "test" else self.source_data
        images = torch.from_numpy(np.ascontiguousarray(image_set.images[self.images[part]]))
        generator = torch.Generator().manual_seed(0)  # unused by eval transforms
        return embeddings(self.net, images, transform=lambda batch: self._images(batch, False, generator))


def _plan(spec: RunSpec) -> tuple[list[str], int, bool]:
    """(the backbone's unit names, the feature layer's 1-based index, whether units train end to end).
    Refuses augmentation when every used unit is frozen (the twins then read cached features)."""
    with torch.device("meta"):  # unit names only: no weights, no memory
        units = list(get_backbone_entry(spec.backbone).build(None).units)
    layer = unit_index(units, spec.layer, spec.backbone)
    end_to_end = spec.frozen is not None and spec.frozen < layer
    if not end_to_end and parse_augment(spec.augment):
        raise TransferlabError(
            f"siamese with frozen={spec.frozen} freezes every unit up to the feature layer "
            f"({layer}), so it trains on cached features and augmentation cannot apply; use "
            "augment=none or a smaller frozen"
        )
    return units, layer, end_to_end
