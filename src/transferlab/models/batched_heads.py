"""Train many torch heads on shared cached features in one vectorised pass.

Claim: a sweep of fc1-3/gap heads (learning rates x depths x activations x seeds x size subsets) on cached
features spends almost all of its time in per-step Python and small-matrix overhead when each
configuration is trained alone; stacking the configurations' weights turns every step into a few large
matrix products. Evidence: ``benchmarks/heads_grid.py`` (the VGG16 study's 72-configuration grid, batched
vs one by one: time ratio and accuracy difference) and ``tests/test_batched_heads.py`` (one configuration
batched ends with the weights of its single run; a grid gives the single runs' accuracies).

How a configuration sees exactly what its single run (``head.fit`` -> :func:`transferlab.train.train`)
would see:
- its module is built by the head's own code under the head's seed (same initialisation), and its
  Linear weights are copied into the stacks; at the end the trained weights are copied back into that
  module, so ``head.predict``/``score``/``loss`` are the single path's own code;
- configurations are grouped into *passes* that share one mini-batch sequence: the same training array
  object, the same seed (the single run's batch order is ``randperm(n, generator(seed))`` per epoch),
  batch size and optimizer. Within a pass each step draws one batch, and every configuration's loss is
  the mean cross-entropy over that batch, exactly its single run's loss;
- per-configuration optimizer state and step sizes: torch's Adam or SGD over parameters that alias each
  configuration's slice of the stacks, one parameter group per (lr, weight decay);
- per-epoch validation with the single run's rules: the history record, early stopping after
  ``patience`` epochs without a lower validation loss with the best epoch's weights restored, a NaN loss
  failing that configuration only (the others go on), and each configuration's own number of epochs.
Layers are stacked per architecture and hidden activation (same layer widths, same activation). The
stacks of a pass are independent of each other (their own optimizer, their own copy of the batch order),
so they train at once on single-threaded workers, one per torch thread (:mod:`transferlab.parallel`): a
50-row mini-batch through a stack is a few small matrix products that two threads split poorly, while two
stacks on two cores scale almost linearly. A configuration's result does not depend on the number of
workers.
Adam runs as torch's fused CPU kernel: one pass over each parameter instead of a dozen elementwise
passes over stacked tensors that no longer fit in cache (measured: 1.5 ms vs 74 ms per step for 18 fc
heads on 1,280 features).

What is not batched (trained by ``head.fit`` one by one, with the same results): dropout > 0 (its random
masks come from the global RNG stream of the single run), gap heads on (N, C, H, W) maps, and anything
whose module is not a plain Linear/activation stack.

Numerics: the stacked products sum in a different order than ``nn.Linear``, so weights agree with the
single run to float32 rounding (about 1e-6 per step), not bit for bit.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from transferlab.errors import TransferlabError
from transferlab.models.heads import GlobalAveragePool, _TorchHead
from transferlab.parallel import Stopped, run_jobs, worker_count
from transferlab.train import Budget, Checks, TrainConfig, TrainingFailed, diverged, resolve_budget, seeded

EVAL_ROWS = 512  # validation rows per forward chunk (bounds the (C, rows, D) batched input)
ACTIVATION_TYPES = (nn.Sigmoid, nn.ELU, nn.ReLU)


@dataclass
class _Config:
    """One head being trained: its settings, its single-path module, and its progress."""

    index: int  # position in the caller's list
    head: _TorchHead
    config: TrainConfig
    budget: Budget
    module: nn.Module
    linears: list[nn.Linear]
    activation: nn.Module | None  # hidden activation (None for a linear head)
    checks: Checks | None = None  # its validation checks: history, early stopping, best weights
    active: bool = True
    final: tuple[int, list[torch.Tensor]] | None = None  # (epoch, weights) the head ends with
    failure: BaseException | None = None
    n_train: int = 0

    def __post_init__(self) -> None:
        self.checks = Checks(self.config.patience, self.config.lr)

    @property
    def history(self) -> list[dict]:
        return self.checks.history


def _stack_layers(module: nn.Module) -> tuple[list[nn.Linear], nn.Module | None] | None:
    """(Linear layers, hidden activation) when ``module`` is a Linear/activation stack the batched pass
    reproduces exactly (dropout p=0 and global pooling of (N, D) features are identities); else None."""
    linears, activations = [], []
    for layer in module.children() if isinstance(module, nn.Sequential) else [module]:
        if isinstance(layer, nn.Linear):
            linears.append(layer)
        elif isinstance(layer, ACTIVATION_TYPES):
            activations.append(layer)
        elif isinstance(layer, nn.Dropout) and layer.p == 0:
            continue
        elif isinstance(layer, GlobalAveragePool):
            continue  # the caller only batches (N, D) inputs, which it passes through
        else:
            return None
    if not linears or len(activations) != len(linears) - 1 or len({repr(a) for a in activations}) > 1:
        return None
    return linears, (activations[0] if activations else None)


class _Stack:
    """The stacked weights of C configurations with the same layer widths and hidden activation.

    Layer 1: weight (C*H1, D), the configurations' nn.Linear weights one under the other, and bias
    (C*H1,), so the shared batch (B, D) meets every configuration in one matrix product (forward
    x @ W1.T, weight gradient dZ.T @ x), with no copy of the batch per configuration. Later layers:
    weight (C, in, out) and bias (C, out) for ``baddbmm``. Every configuration's slice of every tensor
    is contiguous (its optimizer parameters alias these slices; ``per_config`` views index them)."""

    def __init__(self, configs: list[_Config]) -> None:
        self.configs = configs
        self.size = len(self.configs)
        self.depth = len(self.configs[0].linears)
        self.activation = self.configs[0].activation
        with torch.no_grad():
            first = [c.linears[0] for c in self.configs]
            self.params: list[torch.Tensor] = [
                torch.cat([layer.weight for layer in first]).contiguous(),
                torch.cat([layer.bias for layer in first]).contiguous(),
            ]
            for depth in range(1, self.depth):
                layers = [c.linears[depth] for c in self.configs]
                self.params.append(torch.stack([layer.weight.t() for layer in layers]).contiguous())
                self.params.append(torch.stack([layer.bias for layer in layers]).contiguous())
        for p in self.params:
            p.requires_grad_(True)
        self.hidden = first[0].out_features  # H1
        # shape of each tensor with the configuration axis first (a view: same storage)
        self.per_config = [(self.size, self.hidden, first[0].in_features), (self.size, self.hidden)]
        self.per_config += [tuple(p.shape) for p in self.params[2:]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, D) shared by every configuration -> logits (C, B, K)."""
        z = (
            torch.addmm(self.params[1], x, self.params[0].t())
            .view(len(x), self.size, self.hidden)
            .transpose(0, 1)
        )
        for depth in range(1, self.depth):
            z = torch.baddbmm(
                self.params[2 * depth + 1].unsqueeze(1), self.activation(z), self.params[2 * depth]
            )
        return z

    def weights_of(self, k: int) -> list[torch.Tensor]:
        """Configuration k's weights in nn.Linear layout: [W1 (H1, D), b1, W2 (H2, H1), b2, ...], copies."""
        with torch.no_grad():
            out = [
                self.params[0].view(self.per_config[0])[k].clone(),
                self.params[1].view(self.per_config[1])[k].clone(),
            ]
            return out + [p[k].t().clone() if p.ndim == 3 else p[k].clone() for p in self.params[2:]]


class _Optimizer:
    """torch's own Adam (fused CPU kernel where available) or SGD over every configuration of a stack:
    each configuration's parameters are leaf tensors aliasing its slices of the stacks, grouped by
    (lr, weight decay, momentum), so every configuration has its own state and step size."""

    def __init__(self, stack: _Stack, kind: str) -> None:
        groups: dict[tuple, list[nn.Parameter]] = {}
        self.aliases: list[
            tuple[nn.Parameter, torch.Tensor, tuple, int]
        ] = []  # (alias, stack tensor, view, k)
        for k, c in enumerate(stack.configs):
            key = (c.config.lr, c.config.weight_decay, c.config.momentum)
            for p, shape in zip(stack.params, stack.per_config, strict=True):
                alias = nn.Parameter(p.data.view(shape)[k])  # p's storage: updating it updates the stack
                groups.setdefault(key, []).append(alias)
                self.aliases.append((alias, p, shape, k))
        settings = [
            {
                "params": params,
                "lr": lr,
                "weight_decay": decay,
                **({"momentum": momentum} if kind == "sgd" else {}),
            }
            for (lr, decay, momentum), params in groups.items()
        ]
        if kind == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(settings)
        else:
            try:  # one vectorised kernel per group instead of a dozen elementwise passes per tensor
                self.optimizer = torch.optim.Adam(settings, fused=True)
            except RuntimeError:  # a torch build without the fused CPU kernel: the plain implementation
                self.optimizer = torch.optim.Adam(settings)

    def step(self) -> None:
        for alias, stacked, shape, k in self.aliases:
            alias.grad = stacked.grad.view(shape)[k]
        self.optimizer.step()
        for _, stacked, _, _ in self.aliases:
            stacked.grad = None


class _Memo:
    """A function's value, computed on the first call only."""

    def __init__(self, function: Callable[[], object]) -> None:
        self.function, self.done, self.value = function, False, None

    def __call__(self):
        if not self.done:
            self.value, self.done = self.function(), True
        return self.value


def _record_failure(config: _Config, reason: str, history: list[dict]) -> None:
    config.failure, config.active = TrainingFailed(reason, history), False


def _finish(config: _Config, epoch: int, weights: Callable[[], list[torch.Tensor]]) -> None:
    """Stop ``config`` after ``epoch``: it keeps its best epoch's weights (patience) or ``weights()``."""
    config.active = False
    config.final = config.checks.best if config.checks.best is not None else (epoch, weights())


def _train_stack(
    configs: list[_Config],
    x: torch.Tensor,
    y: torch.Tensor,
    x_val: torch.Tensor | None,
    y_val: torch.Tensor | None,
    stop: threading.Event,
) -> float:
    """Train ``configs`` (same layer widths and activation, batch order, batch size and optimizer)
    together as one stack; returns seconds. ``stop`` set: raise ``Stopped`` at the next step."""
    started = time.perf_counter()
    stack = _Stack(configs)
    first = configs[0].config
    timeline = configs[0].budget  # learning-rate factor and check epochs: shared by the pass (see _timeline)
    optimizer = _Optimizer(stack, first.optimizer)
    peaks = [group["lr"] for group in optimizer.optimizer.param_groups]
    generator = torch.Generator().manual_seed(first.seed)
    n, batch_size = len(y), first.batch_size
    has_val = x_val is not None and len(y_val) > 0
    loss_sum = torch.zeros(stack.size, dtype=torch.float64)  # since each configuration's last check
    correct = torch.zeros(stack.size, dtype=torch.int64)
    seen, since, steps_done = 0, time.perf_counter(), 0
    for epoch in range(1, max(c.budget.epochs for c in configs) + 1):
        order = torch.randperm(n, generator=generator)
        for step, start in enumerate(range(0, n, batch_size)):
            if stop.is_set():
                raise Stopped()
            factor = timeline.lr_factor(steps_done)
            for group, peak in zip(optimizer.optimizer.param_groups, peaks, strict=True):
                group["lr"] = peak * factor
            steps_done += 1
            batch = order[start : start + batch_size]
            xb, yb = x[batch], y[batch]
            logits = stack.forward(xb)  # (C, B, K)
            loss = (
                nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[2]), yb.repeat(stack.size), reduction="none"
                )
                .view(stack.size, -1)
                .mean(1)
            )
            losses = loss.detach()
            loss_sum += losses.double() * len(batch)
            correct += (logits.detach().argmax(2) == yb).sum(1)
            # One finiteness check per step; the per-configuration look only when something diverged.
            if not bool(torch.isfinite(losses).all()):
                for k, c in enumerate(stack.configs):
                    value = losses[k].item()
                    if c.active and not math.isfinite(value):
                        reason = diverged(value, epoch, step + 1, c.config.lr, c.config.optimizer)
                        _record_failure(c, reason, list(c.history))
            if not any(c.active for c in configs):
                break
            loss.sum().backward()
            optimizer.step()
            seen += len(batch)
        if not any(c.active for c in configs):
            break
        checking = [k for k, c in enumerate(stack.configs) if c.active and c.budget.is_check(epoch)]
        if not checking:
            continue
        val = _evaluate(stack, x_val, y_val) if has_val else None
        seconds = (time.perf_counter() - since) / len(configs)  # each configuration's share
        for k in checking:
            c = stack.configs[k]
            try:
                c.checks.record(
                    epoch,
                    float(loss_sum[k]),
                    int(correct[k]),
                    seen,
                    None if val is None else (val[0][k], val[1][k]),
                    seconds,
                )
            except TrainingFailed as failure:  # this configuration only; the others go on
                c.failure, c.active = failure, False
                continue
            weights = _Memo(lambda k=k: stack.weights_of(k))  # copied at most once per check
            if c.checks.stop(weights) or epoch == c.budget.epochs:
                _finish(c, epoch, weights)
        # Every configuration of a pass checks at the same epochs (see _timeline), so the running sums restart.
        loss_sum.zero_()
        correct.zero_()
        seen, since = 0, time.perf_counter()
        if not any(c.active for c in configs):
            break
    return time.perf_counter() - started


@torch.no_grad()
def _evaluate(stack: _Stack, x: torch.Tensor, y: torch.Tensor) -> tuple[list[float], list[float]]:
    """(mean cross-entropy per configuration, accuracy per configuration) of ``stack`` on (x, y)."""
    loss_sum = torch.zeros(stack.size, dtype=torch.float64)
    correct = torch.zeros(stack.size, dtype=torch.int64)
    for start in range(0, len(y), EVAL_ROWS):
        xb, yb = x[start : start + EVAL_ROWS], y[start : start + EVAL_ROWS]
        logits = stack.forward(xb)
        loss = nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[2]), yb.repeat(stack.size), reduction="none"
        ).view(stack.size, -1)
        loss_sum += loss.double().sum(1)
        correct += (logits.argmax(2) == yb).sum(1)
    n = max(len(y), 1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()


def _load_weights(config: _Config) -> None:
    epoch, weights = config.final
    with torch.no_grad():
        for layer, (w, b) in zip(config.linears, zip(weights[::2], weights[1::2], strict=True), strict=True):
            layer.weight.copy_(w)
            layer.bias.copy_(b)
    config.module.eval()
    head = config.head
    head.module_, head.history_, head.best_epoch_ = config.module, config.history, epoch
    head.budget_ = config.budget.record(config.history[-1]["epoch"] if config.history else 0, config.n_train)


def fit_heads(
    heads: Sequence[_TorchHead],
    train_sets: Sequence[tuple],
    eval_sets: Sequence[tuple | None],
    *,
    min_pass: int = 2,
    workers: int | None = None,
) -> list[BaseException | None]:
    """Fit every head as ``heads[i].fit(*train_sets[i], eval_set=eval_sets[i])`` would, batching those
    that can share a pass. train_sets[i] = (X (N, D) float features, y (N,) labels); eval_sets[i] =
    (X_val, y_val) or None. Heads given the *same* X and y objects, seed, batch size and optimizer share
    mini-batches (and so train in one pass); give each distinct feature array once.

    Returns, per head, None (fitted: ``module_``, ``classes_``, ``history_``, ``best_epoch_`` set, plus
    ``batched_with_``, the heads in its pass, and ``fit_seconds_``, its share of the pass's time) or the
    exception its single fit would have raised (``TrainingFailed`` with the history so far, or a
    ``TransferlabError``); one head's failure never stops the others. A pass of fewer than ``min_pass``
    heads uses the single path (``head.fit``). Stacks and single fits are independent jobs, run on
    ``workers`` single-threaded workers (None: one per torch thread; see :mod:`transferlab.parallel`)."""
    if not len(heads) == len(train_sets) == len(eval_sets):
        raise TransferlabError(
            f"fit_heads needs one train set and one eval set per head, got {len(heads)} heads, "
            f"{len(train_sets)} train sets and {len(eval_sets)} eval sets"
        )
    errors: list[BaseException | None] = [None] * len(heads)
    tensors: dict[int, torch.Tensor] = {}  # id(array) -> its torch view, so shared arrays stay shared

    def tensor(array, convert) -> torch.Tensor:
        if id(array) not in tensors:
            tensors[id(array)] = torch.from_numpy(convert(array))
        return tensors[id(array)]

    passes: dict[tuple, list[_Config]] = {}
    data: dict[tuple, tuple] = {}
    alone: list[tuple] = []  # (index, head, X, y, eval_set) of heads that train on the single path
    for i, (head, (X, y), eval_set) in enumerate(zip(heads, train_sets, eval_sets, strict=True)):
        try:
            flat = head._inputs(X)
            if flat.ndim != 2:  # a gap head on feature maps: pooling is not stacked
                raise _NotBatchable
            y_index = head._start_fit(y)
            config = head.train_config()
            budget = resolve_budget(config, len(y_index))
            with seeded(head.seed):
                module = head._module(flat, len(head.classes_))
            layers = _stack_layers(module)
            if layers is None:
                raise _NotBatchable
            has_val = eval_set is not None and len(eval_set[1]) > 0
            if config.patience is not None and not has_val:
                raise TransferlabError(
                    "early stopping (patience) needs validation data; set val_size > 0 or patience=None"
                )
            # The same arrays give the same tensors; labels are re-encoded per head (same classes_, same codes).
            x_train = tensor(X, head._inputs)
            y_train = torch.from_numpy(y_index)
            x_val = y_val = None
            if eval_set is not None:
                x_val = tensor(eval_set[0], head._inputs)
                y_val = torch.from_numpy(head._encode(eval_set[1]))
            key = (
                id(X),
                id(y),
                id(eval_set[0]) if eval_set is not None else None,
                head.seed,
                config.batch_size,
                config.optimizer,
                len(head.classes_),
                _timeline(budget),
            )
            passes.setdefault(key, []).append(
                _Config(i, head, config, budget, module, *layers, n_train=len(y_index))
            )
            data.setdefault(key, (x_train, y_train, x_val, y_val))
            head.n_features_in_ = int(np.prod(flat.shape[1:]))
        except _NotBatchable:
            alone.append((i, head, X, y, eval_set))
        except (TransferlabError, TrainingFailed) as exc:
            errors[i] = exc
    # Each pass's stacks (same layer widths and activation) are independent jobs: they run on
    # single-threaded workers, longest first, and each gives what it gives alone, whatever the number of
    # workers. Heads on the single path train here afterwards, one by one: they seed torch's global RNG.
    jobs: list[tuple[float, object]] = []
    for key, configs in passes.items():
        if len(configs) < min_pass:  # nothing to share: the single path itself
            alone += [(c.index, c.head, *train_sets[c.index], eval_sets[c.index]) for c in configs]
            continue
        stacks: dict[tuple, list[_Config]] = {}
        for c in configs:
            shape = tuple((layer.in_features, layer.out_features) for layer in c.linears)
            stacks.setdefault((shape, repr(c.activation)), []).append(c)
        n = len(data[key][1])
        jobs += [
            (sum(_cost(c, n) for c in members), _stack_job(members, len(configs), data[key], errors))
            for members in stacks.values()
        ]
    jobs.sort(key=lambda job: -job[0])
    run_jobs([job for _, job in jobs], worker_count(len(jobs), workers))
    for index, head, X, y, eval_set in sorted(alone, key=lambda single: single[0]):
        errors[index] = _fit_one(head, X, y, eval_set)
    return errors


def _cost(config: _Config, n: int) -> float:
    """Relative training cost of a configuration: multiply-adds per image x images x epochs."""
    return sum(layer.in_features * layer.out_features for layer in config.linears) * n * config.budget.epochs


def _timeline(budget: Budget) -> tuple:
    """Configurations share a pass only when their learning-rate factors and check epochs agree at every
    step: any number of epochs at a constant rate checked every epoch (the studies' protocol), else the
    same step budget."""
    if budget.schedule == "constant" and budget.warmup_steps == 0 and budget.check_every == 1:
        return ("constant",)
    return (budget.epochs, budget.schedule, budget.warmup_steps, budget.check_every)


def _stack_job(configs: list[_Config], pass_size: int, tensors: tuple, errors: list):
    def train(stop: threading.Event) -> None:
        seconds = _train_stack(configs, *tensors, stop)
        for c in configs:
            c.head.batched_with_, c.head.fit_seconds_ = pass_size, seconds / len(configs)
            if c.failure is not None:
                errors[c.index] = c.failure
            else:
                _load_weights(c)

    return train


class _NotBatchable(Exception):
    """This head trains alone (see the module docstring for which)."""


def _fit_one(head: _TorchHead, X, y, eval_set) -> BaseException | None:
    started = time.perf_counter()
    try:
        head.fit(X, y, eval_set=eval_set)
    except (TransferlabError, TrainingFailed) as exc:
        return exc
    finally:
        head.batched_with_, head.fit_seconds_ = 1, time.perf_counter() - started
    return None
