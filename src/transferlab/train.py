"""The one training loop every strategy uses.

Claim: for a given seed, model and data, :func:`train` gives bit-identical weights and history on CPU.
Evidence: every random draw inside (batch order, augmentation, dropout, weight init done under
:func:`seeded`) comes from generators seeded by the run's seed, and the global torch RNG is restored
afterwards, so one run cannot perturb the next (tests/test_train.py checks two runs for equality).

What it does: mini-batch Adam or SGD with momentum, L2 weight decay, parameter groups with their own
learning rates (e.g. a smaller one for a pretrained backbone), a fixed number of epochs or early stopping
on validation loss that restores the best epoch, and a per-epoch history. A non-finite loss stops
training with :class:`TrainingFailed`, whose message says where and what to try; the run is then
recorded as failed instead of crashing the study.

BatchNorm statistics (``bn_stats="recalibrate"``, the default): before each validation and at the end,
the running mean/variance of every trainable BatchNorm layer is recomputed from the (clean) training
images under the current weights (the average of the per-batch statistics, as SWA's ``update_bn``). Why: with few labels a run takes few optimizer steps (27
images at batch 50 = 1 step per epoch), and momentum-averaged statistics lag so far behind the weights
that the eval-mode network can collapse to one class while the train-mode one fits perfectly (measured:
a cifar_cnn on 27 Fashion-MNIST images, 20 epochs, scored chance in eval mode). ``"momentum"`` keeps
PyTorch's running averages as they are (the studies' Keras setup). Frozen BatchNorm is never touched.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from transferlab import faults
from transferlab.errors import TransferlabError, options_hint

OPTIMIZERS = ("adam", "sgd")
BN_STATS = ("recalibrate", "momentum")

# Applied to every batch before the model sees it: (raw batch, training?, generator) -> model input.
# Strategies use it to turn uint8 NHWC images into normalised float NCHW and to augment at train time.
BatchTransform = Callable[[torch.Tensor, bool, torch.Generator], torch.Tensor]


class TrainingFailed(RuntimeError):
    """Training could not continue (e.g. the loss became NaN). ``history`` holds the finished epochs."""

    def __init__(self, reason: str, history: list[dict]):
        super().__init__(reason)
        self.reason = reason
        self.history = history


@dataclass(frozen=True)
class TrainConfig:
    """How to train. Units: ``lr`` per optimizer step; ``weight_decay`` is the L2 coefficient added to
    every gradient (``grad += weight_decay * w``, i.e. loss + weight_decay/2 * ||w||^2); ``epochs`` full
    passes over the training set; ``batch_size`` images per step; ``patience`` epochs without a lower
    validation loss before stopping (None = always run ``epochs`` and keep the last epoch); ``bn_stats``
    how BatchNorm running statistics are set (see the module docstring)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    epochs: int = 20
    batch_size: int = 50
    patience: int | None = None
    bn_stats: str = "recalibrate"
    seed: int = 0
    progress: bool = False
    description: str = "training"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TransferlabError(f"optimizer {self.optimizer!r} is unknown{options_hint(self.optimizer, OPTIMIZERS)}")
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TransferlabError(f"lr={self.lr!r} is invalid; give a learning rate > 0 (e.g. 1e-3)")
        if not 0 <= self.momentum < 1:
            raise TransferlabError(f"momentum={self.momentum!r} is invalid; give a value in [0, 1)")
        if not self.weight_decay >= 0:
            raise TransferlabError(f"weight_decay={self.weight_decay!r} is invalid; give an L2 coefficient >= 0")
        if isinstance(self.epochs, bool) or not isinstance(self.epochs, int) or self.epochs < 1:
            raise TransferlabError(f"epochs={self.epochs!r} is invalid; give a whole number >= 1")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise TransferlabError(f"batch_size={self.batch_size!r} is invalid; give a whole number >= 1")
        if self.bn_stats not in BN_STATS:
            raise TransferlabError(f"bn_stats {self.bn_stats!r} is unknown{options_hint(self.bn_stats, BN_STATS)}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise TransferlabError(f"patience={self.patience!r} is invalid; give a whole number of epochs >= 1 or None")


@dataclass
class TrainOutcome:
    """What :func:`train` did. ``history``: one dict per finished epoch with ``epoch`` (1-based),
    ``train_loss``/``train_accuracy`` (running means over the epoch's batches, in train mode, i.e. with
    augmentation and dropout), ``val_loss``/``val_accuracy`` (None without validation data), ``seconds``.
    ``best_epoch``: the epoch whose weights the model holds now."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block with torch's global CPU RNG seeded by ``seed`` and restore the previous RNG state
    afterwards, so weight init and dropout inside are reproducible without leaking into other code."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def trainable_parameters(module: nn.Module) -> list[nn.Parameter]:
    """Parameters with ``requires_grad`` (frozen ones are left out of the optimizer)."""
    return [p for p in module.parameters() if p.requires_grad]


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256,
                          transform: BatchTransform | None = None) -> None:  # fmt: skip
    """Set the running mean/variance of every BatchNorm layer that is in train mode (i.e. trainable;
    frozen ones are kept in eval mode by ``Backbone.freeze``) to the average of their batch statistics
    over ``inputs`` under the current weights (exact for the mean with equal batches, and for both with
    one batch). Every other module runs in eval mode; modes are restored afterwards."""
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm) and m.training and m.track_running_stats]
    if not layers:
        return
    transform = transform or _identity
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in layers}
    model.eval()
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # None = cumulative average over the batches that follow
        m.train()
    generator = torch.Generator().manual_seed(0)  # unused by eval transforms; required by the signature
    try:
        for start in range(0, len(inputs), batch_size):
            model(transform(inputs[start : start + batch_size], False, generator))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode


def _make_optimizer(groups: Sequence[dict], config: TrainConfig) -> torch.optim.Optimizer:
    groups = [dict(g) for g in groups if len(list(g["params"])) > 0]
    if not groups:
        raise TransferlabError("nothing to train: every parameter is frozen")
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)


def _identity(batch: torch.Tensor, training: bool, generator: torch.Generator) -> torch.Tensor:
    return batch


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    inputs: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int = 256,
    transform: BatchTransform | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` in eval mode on ``inputs`` (N, ...) with int64
    ``labels`` (N,). The model's train/eval mode is restored afterwards."""
    transform = transform or _identity
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)  # unused by eval transforms; required by the signature
    total_loss, correct = 0.0, 0
    try:
        for start in range(0, len(labels), batch_size):
            x = transform(inputs[start : start + batch_size], False, generator)
            logits = model(x)
            y = labels[start : start + batch_size].to(logits.device)
            total_loss += nn.functional.cross_entropy(logits, y, reduction="sum").item()
            correct += int((logits.argmax(1) == y).sum())
    finally:
        model.train(was_training)
    n = max(len(labels), 1)
    return total_loss / n, correct / n


@torch.inference_mode()
def predict_logits(model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256,
                   transform: BatchTransform | None = None) -> torch.Tensor:  # fmt: skip
    """Logits (N, num_classes) of ``model`` in eval mode; the train/eval mode is restored afterwards."""
    transform = transform or _identity
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)
    try:
        out = [model(transform(inputs[s : s + batch_size], False, generator)) for s in range(0, len(inputs), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out).cpu() if out else torch.empty(0)


def train(
    model: nn.Module,
    train_inputs: torch.Tensor,
    train_labels: torch.Tensor,
    config: TrainConfig,
    *,
    val_inputs: torch.Tensor | None = None,
    val_labels: torch.Tensor | None = None,
    param_groups: Sequence[dict] | None = None,
    transform: BatchTransform | None = None,
    eval_batch_size: int = 256,
) -> TrainOutcome:
    """Train ``model`` (returning logits (N, num_classes)) with softmax cross-entropy.

    train_inputs: (N, ...) anything ``transform`` turns into model input (default: fed as is);
    train_labels: int64 (N,). param_groups: torch optimizer groups (``{"params": [...], "lr": x}``; a
    group without ``lr`` uses ``config.lr``); default: every parameter with ``requires_grad``.
    transform(batch, training, generator): per-batch preprocessing/augmentation; the generator is seeded
    from ``config.seed``. With ``config.patience`` and validation data, training stops after ``patience``
    epochs without a lower validation loss and the best epoch's weights are restored.

    Raises :class:`TrainingFailed` if the loss becomes NaN or infinite. The model ends in eval mode.
    """
    if len(train_labels) == 0:
        raise TransferlabError("the training set is empty")
    has_val = val_inputs is not None and val_labels is not None and len(val_labels) > 0
    if config.patience is not None and not has_val:
        raise TransferlabError("early stopping (patience) needs validation data; set val_size > 0 or patience=None")
    transform = transform or _identity
    groups = param_groups if param_groups is not None else [{"params": trainable_parameters(model)}]
    optimizer = _make_optimizer(groups, config)
    generator = torch.Generator().manual_seed(config.seed)
    outcome = TrainOutcome()
    best_loss, best_state, since_best = math.inf, None, 0
    n = len(train_labels)
    started = time.perf_counter()

    with seeded(config.seed), _progress_bar(config, n) as advance:
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n, generator=generator)
            loss_sum, correct = 0.0, 0
            for step, start in enumerate(range(0, n, config.batch_size)):
                batch = order[start : start + config.batch_size]
                x = transform(train_inputs[batch], True, generator)
                logits = model(x)
                y = train_labels[batch].to(logits.device)
                loss = nn.functional.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise TrainingFailed(
                        f"loss became {loss.item()} at epoch {epoch}, step {step + 1} (lr={config.lr:g}, "
                        f"optimizer={config.optimizer}); training diverged: try a smaller learning rate",
                        outcome.history,
                    )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                loss_sum += loss.item() * len(batch)
                correct += int((logits.detach().argmax(1) == y).sum())
                advance(len(batch))
            record = {"epoch": epoch, "train_loss": loss_sum / n, "train_accuracy": correct / n,
                      "val_loss": None, "val_accuracy": None}  # fmt: skip
            if config.bn_stats == "recalibrate" and (has_val or epoch == config.epochs):
                recalibrate_batchnorm(model, train_inputs, batch_size=eval_batch_size, transform=transform)
            if has_val:
                val_loss, val_acc = evaluate(model, val_inputs, val_labels, batch_size=eval_batch_size,
                                             transform=transform)  # fmt: skip
                record.update(val_loss=val_loss, val_accuracy=val_acc)
                if not math.isfinite(val_loss):
                    raise TrainingFailed(
                        f"validation loss became {val_loss} at epoch {epoch} (lr={config.lr:g}); training "
                        "diverged: try a smaller learning rate",
                        outcome.history + [record],
                    )
            record["seconds"] = time.perf_counter() - epoch_start
            outcome.history.append(record)
            outcome.best_epoch = epoch
            faults.checkpoint("train-epoch")
            if config.patience is not None:
                if record["val_loss"] < best_loss:
                    best_loss, since_best = record["val_loss"], 0
                    best_state = (epoch, copy.deepcopy(model.state_dict()))
                else:
                    since_best += 1
                    if since_best >= config.patience:
                        outcome.stopped_early = epoch < config.epochs
                        break
        if best_state is not None:
            outcome.best_epoch = best_state[0]
            model.load_state_dict(best_state[1])
    model.eval()
    outcome.seconds = time.perf_counter() - started
    return outcome


@contextlib.contextmanager
def _progress_bar(config: TrainConfig, n: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over all epochs' images (on stderr), or a no-op when ``config.progress`` is off."""
    if not config.progress:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=Console(stderr=True), transient=True) as bar:  # fmt: skip
        task = bar.add_task(f"{config.description} ({config.epochs} epochs)", total=n * config.epochs)
        yield lambda k: bar.advance(task, k)
