"""The one training loop every strategy uses.

Claim: for a given seed, model and data, :func:`train` gives bit-identical weights and history on CPU.
Evidence: every random draw inside (batch order, augmentation, dropout, weight init done under
:func:`seeded`) comes from generators seeded by the run's seed, and the global torch RNG is restored
afterwards, so one run cannot perturb the next (tests/test_train.py checks two runs for equality).

What it does: mini-batch Adam or SGD with momentum, L2 weight decay, parameter groups with their own
learning rates (e.g. a smaller one for a pretrained backbone), an optional penalty added to the loss
(L2-SP), a training budget (:class:`Budget`), early stopping on validation loss that restores the best
checked weights, and a history with one record per validation check.

Budgets (:func:`resolve_budget`): ``epochs`` given = the studies' protocol exactly (that many passes,
constant learning rate, validation after every epoch). Otherwise the budget is counted in optimizer
steps, because with few labels an epoch is one or two steps (50 images at batch 50 = 1 step: 20 epochs
= 20 steps, far from converged): ``steps`` given, or the size rule (``AUTO_*``: 50 passes over the
training set, at least 200 and at most 2,000 steps; in the spirit of BiT's HyperRule, which sets the
schedule length by the number of labelled images), with linear warmup over the first 5 % of steps and
cosine decay to zero, about ``CHECKS_PER_RUN`` validation checks spread over the run, and (set by the
run spec) early stopping after ``patience`` checks without a lower validation loss. A non-finite loss stops
training with :class:`TrainingFailed`, whose message says where and what to try; the run is then
recorded as failed instead of crashing the study.

BatchNorm statistics (``bn_stats="recalibrate"``, the default): before each validation and at the end,
the running mean/variance of every trainable BatchNorm layer is recomputed from the (clean) training
images under the current weights (the average of the per-batch statistics, as SWA's ``update_bn``). Why: with few labels a run takes few optimizer steps (27
images at batch 50 = 1 step per epoch), and momentum-averaged statistics lag so far behind the weights
that the eval-mode network can collapse to one class while the train-mode one fits perfectly (measured:
a cifar_cnn on 27 Fashion-MNIST images, 20 epochs, scored chance in eval mode). ``"momentum"`` keeps
PyTorch's running averages as they are (the studies' Keras setup). ``"pretrained"`` runs every
BatchNorm layer in eval mode throughout: the loaded running statistics normalise training and evaluation
batches alike while the scale and shift still train (LP-FT's default: the features the probe was fitted
on stay the features the head sees; batch statistics of a few dozen images would move them). Frozen
BatchNorm is never touched.
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
from transferlab.settings import AUTO_PATIENCE, BN_STATS, OPTIMIZERS, SCHEDULES  # noqa: F401  (re-exported)

# The size rule (budget "auto"): passes over the training set, clamped to a range of optimizer steps.
AUTO_EPOCHS = 50
AUTO_MIN_STEPS = 200
AUTO_MAX_STEPS = 2000
WARMUP_FRACTION = 0.05  # of the steps, for step budgets (linear warmup from 0)
CHECKS_PER_RUN = 40  # validation checks a step budget spreads over its run (at most one per epoch)

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
    """How to train. Units: ``lr`` per optimizer step (the peak, with a schedule); ``weight_decay`` is the
    L2 coefficient added to every gradient (``grad += weight_decay * w``, i.e. loss + weight_decay/2 *
    ||w||^2); ``epochs`` full passes over the training set, or ``steps`` optimizer steps (neither: the size
    rule; see the module docstring and :func:`resolve_budget`); ``batch_size`` images per step;
    ``schedule`` constant | cosine (None: constant with ``epochs``, warmup + cosine otherwise);
    ``patience`` validation checks without a lower validation loss before stopping (None = run the whole
    budget and keep the last weights); ``evaluate_start``: also check validation before the first step,
    so the starting weights can win (LP-FT: the head starts as the converged linear probe); ``bn_stats``
    how BatchNorm running statistics are set (see the module docstring)."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9  # SGD only
    weight_decay: float = 0.0
    epochs: int | None = 20
    batch_size: int = 50
    patience: int | None = None
    bn_stats: str = "recalibrate"
    seed: int = 0
    progress: bool = False
    description: str = "training"
    steps: int | None = None
    schedule: str | None = None
    evaluate_start: bool = False

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise TransferlabError(
                f"optimizer {self.optimizer!r} is unknown{options_hint(self.optimizer, OPTIMIZERS)}"
            )
        if not (isinstance(self.lr, (int, float)) and math.isfinite(self.lr) and self.lr > 0):
            raise TransferlabError(f"lr={self.lr!r} is invalid; give a learning rate > 0 (e.g. 1e-3)")
        if not 0 <= self.momentum < 1:
            raise TransferlabError(f"momentum={self.momentum!r} is invalid; give a value in [0, 1)")
        if not (math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise TransferlabError(
                f"weight_decay={self.weight_decay!r} is invalid; give an L2 coefficient >= 0"
            )
        for name in ("epochs", "steps"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise TransferlabError(
                    f"{name}={value!r} is invalid: a budget needs at least one optimizer step; "
                    "give a whole number >= 1"
                )
        if self.epochs is not None and self.steps is not None:
            raise TransferlabError("give either epochs or steps as the training budget, not both")
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise TransferlabError(f"batch_size={self.batch_size!r} is invalid; give a whole number >= 1")
        if self.bn_stats not in BN_STATS:
            raise TransferlabError(
                f"bn_stats {self.bn_stats!r} is unknown{options_hint(self.bn_stats, BN_STATS)}"
            )
        if self.schedule is not None and self.schedule not in SCHEDULES:
            raise TransferlabError(
                f"schedule {self.schedule!r} is unknown{options_hint(self.schedule, SCHEDULES)}"
            )
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise TransferlabError(
                f"patience={self.patience!r} is invalid; give a whole number of validation "
                "checks >= 1 or None"
            )


@dataclass(frozen=True)
class Budget:
    """A run's resolved training length. ``rule``: epochs (given), steps (given) or auto (the size rule);
    ``epochs`` passes of ``steps_per_epoch`` optimizer steps; ``schedule`` of the learning rate after
    ``warmup_steps`` of linear warmup; validation checked every ``check_every`` epochs (and after the
    last); ``patience`` in checks (None: no early stopping)."""

    rule: str
    epochs: int
    steps_per_epoch: int
    schedule: str
    warmup_steps: int
    check_every: int
    patience: int | None
    batch_size: int

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def lr_factor(self, step: int) -> float:
        """Multiplier of every group's peak learning rate at optimizer step ``step`` (0-based)."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return 1.0
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    def is_check(self, epoch: int) -> bool:
        """Whether validation is checked after ``epoch`` (1-based)."""
        return epoch % self.check_every == 0 or epoch == self.epochs

    def record(self, epochs_run: int, n: int) -> dict:
        """JSON-ready summary for a run's result: the planned budget and what ran of it."""
        return {
            "rule": self.rule,
            "steps": self.steps,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "steps_per_epoch": self.steps_per_epoch,
            "images_seen_max": self.epochs * n,
            "schedule": self.schedule,
            "warmup_steps": self.warmup_steps,
            "check_every_epochs": self.check_every,
            "patience_checks": self.patience,
            "epochs_run": epochs_run,
            "steps_run": epochs_run * self.steps_per_epoch,
            "images_seen": epochs_run * n,
        }


def auto_steps(n: int, batch_size: int) -> int:
    """The size rule: ``AUTO_EPOCHS`` passes over ``n`` images, clamped to [AUTO_MIN_STEPS, AUTO_MAX_STEPS]."""
    per_epoch = math.ceil(n / batch_size)
    return min(max(AUTO_EPOCHS * per_epoch, AUTO_MIN_STEPS), AUTO_MAX_STEPS)


def resolve_budget(config: TrainConfig, n: int) -> Budget:
    """The budget ``config`` gives on ``n`` training images (see the module docstring)."""
    per_epoch = math.ceil(n / config.batch_size)
    if config.epochs is not None:
        schedule = config.schedule or "constant"
        warmup = 0 if schedule == "constant" else max(1, round(WARMUP_FRACTION * config.epochs * per_epoch))
        return Budget(
            "epochs", config.epochs, per_epoch, schedule, warmup, 1, config.patience, config.batch_size
        )
    rule = "steps" if config.steps is not None else "auto"
    steps = config.steps if config.steps is not None else auto_steps(n, config.batch_size)
    epochs = math.ceil(steps / per_epoch)
    warmup = max(1, round(WARMUP_FRACTION * epochs * per_epoch))
    check_every = max(1, round(epochs / CHECKS_PER_RUN))
    return Budget(
        rule,
        epochs,
        per_epoch,
        config.schedule or "cosine",
        warmup,
        check_every,
        config.patience,
        config.batch_size,
    )


@dataclass
class TrainOutcome:
    """What :func:`train` did. ``history``: one dict per validation check (every epoch with an ``epochs``
    budget) with ``epoch`` (epochs completed; 0 = before the first step, with ``evaluate_start``),
    ``train_loss``/``train_accuracy`` (running means over the batches since the previous check, in train
    mode, i.e. with augmentation and dropout; None at epoch 0), ``val_loss``/``val_accuracy`` (None
    without validation data), ``seconds``. ``best_epoch``: the epoch whose weights the model holds now.
    ``budget``: the resolved :class:`Budget`."""

    history: list[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    budget: Budget | None = None
    n_train: int = 0

    @property
    def epochs_run(self) -> int:
        """Epochs trained (the last check's epoch; fewer than the budget's after early stopping)."""
        return self.history[-1]["epoch"] if self.history else 0

    def record_at(self, epoch: int) -> dict:
        """The history record of ``epoch`` (e.g. the best one)."""
        return next(r for r in self.history if r["epoch"] == epoch)

    def budget_record(self) -> dict:
        """The budget and what ran of it (JSON-ready), for a run's result."""
        if self.budget is None:
            return {}
        return self.budget.record(self.epochs_run, self.n_train)


def diverged(value: float, epoch: int, step: int, lr: float, optimizer: str) -> str:
    """Why a run failed when its training loss stopped being finite (TrainingFailed's reason)."""
    return (
        f"loss became {value} at epoch {epoch}, step {step} (lr={lr:g}, optimizer={optimizer}); training "
        "diverged: try a smaller learning rate"
    )


@dataclass
class Checks:
    """One run's validation checks, as both training loops (:func:`train` and
    :mod:`transferlab.models.batched_heads`) keep them: the history (see :class:`TrainOutcome`), a run
    whose validation loss is not finite failing with that history, and early stopping: after ``patience``
    checks without a lower validation loss, training stops and the best check's weights are the run's.
    ``best``: (epoch, weights) of the lowest validation loss so far (kept only with patience)."""

    patience: int | None
    lr: float
    history: list[dict] = field(default_factory=list)
    best: tuple[int, object] | None = None
    best_loss: float = math.inf
    since_best: int = 0

    def record(
        self,
        epoch: int,
        loss_sum: float,
        correct: int,
        seen: int,
        val: tuple[float, float] | None,
        seconds: float,
    ) -> dict:
        """Append the check after ``epoch`` (train sums over the ``seen`` images since the previous check;
        ``val`` = (loss, accuracy) or None without validation data). Raises TrainingFailed when the
        validation loss is not finite."""
        record = {
            "epoch": epoch,
            "train_loss": loss_sum / seen if seen else None,
            "train_accuracy": correct / seen if seen else None,
            "val_loss": None,
            "val_accuracy": None,
        }
        if val is not None:
            record.update(val_loss=val[0], val_accuracy=val[1])
            if not math.isfinite(val[0]):
                raise TrainingFailed(
                    f"validation loss became {val[0]} at epoch {epoch} (lr={self.lr:g}); training "
                    "diverged: try a smaller learning rate",
                    self.history + [record],
                )
        record["seconds"] = seconds
        self.history.append(record)
        return record

    def stop(self, weights: Callable[[], object]) -> bool:
        """After :meth:`record`: keep ``weights()`` if this check has the lowest validation loss so far;
        True when ``patience`` checks have passed without one (training ends, ``best`` holds the weights)."""
        if self.patience is None:
            return False
        latest = self.history[-1]
        if latest["val_loss"] < self.best_loss:
            self.best_loss, self.since_best = latest["val_loss"], 0
            self.best = (latest["epoch"], weights())
            return False
        self.since_best += 1
        return self.since_best >= self.patience


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
def recalibrate_batchnorm(
    model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256, transform: BatchTransform | None = None
) -> None:
    """Set the running mean/variance of every BatchNorm layer that is in train mode (i.e. trainable;
    frozen ones are kept in eval mode by ``Backbone.freeze``) to the average of their batch statistics
    over ``inputs`` under the current weights (exact for the mean with equal batches, and for both with
    one batch). Every other module runs in eval mode; modes are restored afterwards."""
    layers = [
        m for m in model.modules() if isinstance(m, _BatchNorm) and m.training and m.track_running_stats
    ]
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
    predictions: list[torch.Tensor] | None = None,
) -> tuple[float, float]:
    """(mean cross-entropy loss, accuracy) of ``model`` in eval mode on ``inputs`` (N, ...) with int64
    ``labels`` (N,). The model's train/eval mode is restored afterwards. ``predictions``: a list that
    receives the predicted labels (int64, CPU), one tensor per batch, in input order."""
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
            predicted = logits.argmax(1)
            correct += int((predicted == y).sum())
            if predictions is not None:
                predictions.append(predicted.cpu())
    finally:
        model.train(was_training)
    n = max(len(labels), 1)
    return total_loss / n, correct / n


@torch.inference_mode()
def predict_logits(
    model: nn.Module, inputs: torch.Tensor, *, batch_size: int = 256, transform: BatchTransform | None = None
) -> torch.Tensor:
    """Logits (N, num_classes) of ``model`` in eval mode; the train/eval mode is restored afterwards."""
    transform = transform or _identity
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(0)
    try:
        out = [
            model(transform(inputs[s : s + batch_size], False, generator))
            for s in range(0, len(inputs), batch_size)
        ]
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
    penalty: Callable[[], torch.Tensor] | None = None,
) -> TrainOutcome:
    """Train ``model`` (returning logits (N, num_classes)) with softmax cross-entropy.

    train_inputs: (N, ...) anything ``transform`` turns into model input (default: fed as is);
    train_labels: int64 (N,). param_groups: torch optimizer groups (``{"params": [...], "lr": x}``; a
    group without ``lr`` uses ``config.lr``; a schedule scales every group's rate by the same factor);
    default: every parameter with ``requires_grad``. transform(batch, training, generator): per-batch
    preprocessing/augmentation; the generator is seeded from ``config.seed``. penalty(): a scalar added to
    every step's loss (e.g. L2-SP); the history's losses are the cross-entropy alone. With
    ``config.patience`` and validation data, training stops after ``patience`` checks without a lower
    validation loss and the best check's weights are restored.

    Raises :class:`TrainingFailed` if the loss becomes NaN or infinite. The model ends in eval mode.
    """
    if len(train_labels) == 0:
        raise TransferlabError("the training set is empty")
    has_val = val_inputs is not None and val_labels is not None and len(val_labels) > 0
    if config.patience is not None and not has_val:
        raise TransferlabError(
            "early stopping (patience) needs validation data; set val_size > 0 or patience=None"
        )
    transform = transform or _identity
    groups = param_groups if param_groups is not None else [{"params": trainable_parameters(model)}]
    optimizer = _make_optimizer(groups, config)
    peaks = [group["lr"] for group in optimizer.param_groups]
    generator = torch.Generator().manual_seed(config.seed)
    n = len(train_labels)
    budget = resolve_budget(config, n)
    checks = Checks(config.patience, config.lr)
    outcome = TrainOutcome(history=checks.history, budget=budget, n_train=n)
    started = time.perf_counter()

    def check(epoch: int, loss_sum: float, correct: int, seen: int, since: float) -> bool:
        """Record a validation check after ``epoch``; True when early stopping ends training."""
        if config.bn_stats == "recalibrate" and (has_val or epoch == budget.epochs):
            recalibrate_batchnorm(model, train_inputs, batch_size=eval_batch_size, transform=transform)
        val = (
            evaluate(model, val_inputs, val_labels, batch_size=eval_batch_size, transform=transform)
            if has_val
            else None
        )
        checks.record(epoch, loss_sum, correct, seen, val, time.perf_counter() - since)
        outcome.best_epoch = epoch
        faults.checkpoint("train-epoch")
        return checks.stop(lambda: copy.deepcopy(model.state_dict()))

    with seeded(config.seed), _progress_bar(config, n, budget.epochs) as advance:
        stop = has_val and config.evaluate_start and check(0, 0.0, 0, 0, time.perf_counter())
        step = 0
        loss_sum, correct, seen, since = 0.0, 0, 0, time.perf_counter()
        for epoch in range(1, budget.epochs + 1):
            if stop:
                break
            model.train()
            if config.bn_stats == "pretrained":
                for module in model.modules():
                    if isinstance(module, _BatchNorm):
                        module.eval()
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, config.batch_size):
                batch = order[start : start + config.batch_size]
                factor = budget.lr_factor(step)
                for group, peak in zip(optimizer.param_groups, peaks, strict=True):
                    group["lr"] = peak * factor
                x = transform(train_inputs[batch], True, generator)
                logits = model(x)
                y = train_labels[batch].to(logits.device)
                loss = nn.functional.cross_entropy(logits, y)
                if not torch.isfinite(loss):
                    raise TrainingFailed(
                        diverged(loss.item(), epoch, step + 1, config.lr, config.optimizer), outcome.history
                    )
                optimizer.zero_grad(set_to_none=True)
                (loss + penalty() if penalty is not None else loss).backward()
                optimizer.step()
                step += 1
                loss_sum += loss.item() * len(batch)
                correct += int((logits.detach().argmax(1) == y).sum())
                seen += len(batch)
                advance(len(batch))
            if budget.is_check(epoch):
                stop = check(epoch, loss_sum, correct, seen, since)
                outcome.stopped_early = stop and epoch < budget.epochs
                loss_sum, correct, seen, since = 0.0, 0, 0, time.perf_counter()
        if checks.best is not None:
            outcome.best_epoch = checks.best[0]
            model.load_state_dict(checks.best[1])
    model.eval()
    outcome.seconds = time.perf_counter() - started
    return outcome


@contextlib.contextmanager
def _progress_bar(config: TrainConfig, n: int, epochs: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over all epochs' images (on stderr), or a no-op when ``config.progress`` is off."""
    if not config.progress:
        yield lambda k: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(f"{config.description} ({epochs} epochs)", total=n * epochs)
        yield lambda k: bar.advance(task, k)
