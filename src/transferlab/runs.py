"""What one run is (:class:`RunSpec`) and what it produced (:class:`RunResult`).

A run is a pure function of its spec: the spec names the data, the subset, the strategy and every
training setting, and ``resolved()`` fills each default the strategy implies, so the saved spec says
exactly what ran. Both classes are flat dataclasses of JSON types (``to_dict`` / ``from_dict``), so a
study can expand a TOML grid into specs and store results as rows.

Validation follows the project rule: a bad value raises :class:`TransferlabError` naming the field,
the value and what would be valid; a setting the chosen strategy does not use is an error, not ignored.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any

from transferlab.catalog import HEAD_SETTINGS, Strategy, get_head, get_strategy, list_strategies
from transferlab.errors import TransferlabError, options_hint
from transferlab.settings import (
    AUTO_PATIENCE,
    BN_STATS,
    DEFAULT_AUGMENT,
    DEVICES,
    OPTIMIZERS,
    SCHEDULES,
    SIDES,
    Setting,
    at_least,
    fraction,
    number,
    parse_augment,
    positive,
    setting,
    whole,
)

_BUDGET = " (a budget needs at least one optimizer step)"

# The settings every strategy takes (a strategy may refuse one in its record's ``excludes``); each
# strategy's own settings are in its record (transferlab.catalog), the heads' in HEAD_SETTINGS.
COMMON: tuple[Setting, ...] = (
    setting(
        "strategy",
        "str",
        None,
        "scratch | augment | extract | finetune | snt | siamese (see transferlab.catalog)",
    ),
    setting("dataset", "str", None, "built-in dataset name or URI, e.g. fashion-mnist, digits, npz:PATH"),
    setting(
        "backbone",
        "str | None",
        None,
        "registry name; default: cifar_cnn for scratch/augment/snt, "
        "efficientnet_lite0.in1k for extract/finetune/siamese",
    ),
    setting(
        "input_size",
        "int | str | None",
        None,
        "side in pixels the images are resized to, or 'auto': the "
        "pretrained weights' working resolution (small images are upsampled, BiT-style); default: the "
        "backbone's own",
        (
            lambda v: v == "auto" or (whole(v) and v >= 1),
            "a whole number of pixels >= 1 or 'auto' (the pretrained weights' working resolution)",
        ),
    ),
    setting(
        "head",
        "str | None",
        None,
        "classifier: extract takes fc1|fc2|fc3|gap|svm|logreg (default logreg); "
        "finetune takes linear|fc1|fc2|fc3 (default linear); scratch, augment and snt train the backbone's "
        "own classifier (linear); siamese takes l1 (weighted L1 distance, weights >= 0, default) | fc "
        "(unconstrained, Koch's)",
    ),
    setting("optimizer", "str", "adam", "adam | sgd (with momentum)", choices=OPTIMIZERS),
    setting(
        "lr", "float", 1e-3, "learning rate of the head / newly initialised layers, per step, > 0", positive()
    ),
    setting("momentum", "float", 0.9, "SGD momentum in [0, 1)", fraction(low_open=False)),
    setting(
        "weight_decay",
        "float | None",
        None,
        "L2 coefficient added to gradients (grad += wd * w), >= 0; "
        "default 0 (1e-4 for siamese, the VGG16 study's)",
        (lambda v: number(v) and v >= 0, "a finite L2 coefficient >= 0"),
    ),
    setting(
        "epochs",
        "int | None",
        None,
        "passes over the training subset, >= 1, at a constant learning rate (the "
        "studies' protocols; the maximum with patience); default: the step budget (steps, or the size rule: "
        "50 passes within 200..2000 steps), warmup + cosine decay, early stopping on validation",
        at_least(1, _BUDGET),
    ),
    setting(
        "steps",
        "int | None",
        None,
        "optimizer steps, >= 1, instead of epochs (warmup + cosine decay); "
        "default: the size rule when epochs is not given either",
        at_least(1, _BUDGET),
    ),
    setting(
        "schedule",
        "str | None",
        None,
        "learning-rate schedule: constant | cosine (after 5% linear warmup); "
        "default constant with epochs, cosine with a step budget",
        choices=SCHEDULES,
    ),
    setting("batch_size", "int", 50, "images per optimizer step, >= 1", at_least(1)),
    setting(
        "patience",
        "int | None",
        None,
        "early stopping: validation checks (each epoch with epochs; about 40 "
        "per run with a step budget) without lower validation loss before stopping and restoring the best "
        "check; default 10 with the size rule, else None = the whole budget",
        at_least(1),
    ),
    setting(
        "bn_stats",
        "str | None",
        None,
        "BatchNorm running statistics: recalibrate (averaged over the "
        "training images under the current weights, before each evaluation; the default) | momentum "
        "(PyTorch's running average) | pretrained (the loaded statistics, every BatchNorm in eval mode; "
        "LP-FT's default)",
        choices=BN_STATS,
        fill="recalibrate",
    ),
    setting(
        "size",
        "float | None",
        None,
        "training fraction of each class's pool in (0, 1]; default 1.0",
        (lambda v: number(v) and 0 < v <= 1, "a fraction in (0, 1] (e.g. 0.01 for 1%)"),
    ),
    setting("per_class", "int | None", None, "training images per class (instead of size)", at_least(1)),
    setting(
        "val_size",
        "float | int",
        0.1,
        "validation: fraction of each class's training images or count per class",
    ),
    setting(
        "test_per_class",
        "int | None",
        None,
        "cap on test images per class (None = the whole test split)",
        at_least(1),
    ),
    setting("source", "str | None", None, "source classes, names or indices separated by commas"),
    setting(
        "target", "str | None", None, "target classes; with one side given the other is every remaining class"
    ),
    setting(
        "side",
        "str",
        "target",
        "which side non-snt strategies learn when source/target are given",
        choices=SIDES,
    ),
    setting(
        "swap", "bool", False, "exchange source and target (for snt with random halves: B->A instead of A->B)"
    ),
    setting(
        "augment",
        "str | None",
        None,
        f"training augmentation: comma list of mirror,noise,crop,affine or none; "
        f"default none ({DEFAULT_AUGMENT} for the augment strategy)",
    ),
    setting(
        "seed",
        "int",
        0,
        "seed of the subset, validation carve, initialisation, batch order and augmentation",
        at_least(0),
    ),
    setting(
        "device",
        "str",
        "cpu",
        "cpu | cuda | auto (cuda when available); results are bit-reproducible on cpu",
        choices=DEVICES,
    ),
)


def _strategy_settings() -> dict[str, Setting]:
    """Every strategy's own settings by name; a name several strategies share (frozen, layer...) has one
    type, and its help joins each strategy's."""
    merged: dict[str, Setting] = {}
    for strategy in list_strategies():
        for s in strategy.settings:
            known = merged.get(s.name)
            if known is None:
                merged[s.name] = s
            elif known.annotation != s.annotation or known.default != s.default:
                raise TransferlabError(
                    f"setting {s.name!r} of strategy {strategy.name!r} has another type or "
                    "default than the strategy that declared it first"
                )
            elif s.help not in known.help:
                merged[s.name] = dataclasses.replace(known, help=f"{known.help}; {s.help}")
    return merged


SETTINGS: dict[str, Setting] = {s.name: s for s in (*COMMON, *HEAD_SETTINGS, *_strategy_settings().values())}


class _RunSpecBase:
    """What one run is (fields: :data:`SETTINGS`). Built by the dataclass below; see the module docstring."""

    # ------------------------------------------------------------------------------ validation

    def __post_init__(self) -> None:
        if self.strategy is None or self.dataset is None:
            raise TransferlabError("a run needs a strategy and a dataset")
        # Flat, canonical values: a study file may give a unit index as a number or classes as a list.
        if isinstance(self.layer, int) and not isinstance(self.layer, bool):
            object.__setattr__(self, "layer", str(self.layer))
        for name in ("source", "target", "val_classes"):
            if isinstance(getattr(self, name), (list, tuple)):
                object.__setattr__(self, name, ",".join(str(c) for c in getattr(self, name)))
        strategy = get_strategy(self.strategy)  # unknown strategy -> error listing the options
        for s in SETTINGS.values():
            s.check(getattr(self, s.name))
        if self.epochs is not None and self.steps is not None:
            raise TransferlabError(
                f"give either epochs ({self.epochs}) or steps ({self.steps}) as the training budget, not both"
            )
        if self.size is not None and self.per_class is not None:
            raise TransferlabError("give either size (a fraction) or per_class (a count), not both")
        parse_augment(self.augment)  # unknown augmentation -> error listing the options
        self._check_taken(strategy)

    def _check_taken(self, strategy: Strategy) -> None:
        """Each strategy and head takes only the settings it uses (a sweep that sets one elsewhere is a
        mistake), then the strategy checks its combinations."""
        if self.head is not None and self.head not in strategy.heads:
            raise TransferlabError(
                f"head {self.head!r} is not taken by strategy {self.strategy!r}{options_hint(self.head, strategy.heads)}"
            )
        head = self.head or strategy.default_head
        for s in SETTINGS.values():
            value = getattr(self, s.name)
            if not s.given(value):
                continue
            if not strategy.takes(s.name):
                why = strategy.excludes.get(s.name) or s.note
                takers = [t.name for t in list_strategies() if t.takes(s.name)]
                raise TransferlabError(
                    f"{s.name} is not a setting of strategy {self.strategy!r}"
                    f"{f' ({why})' if why else ''}; strategies that take it: {', '.join(takers)}"
                )
            if s in HEAD_SETTINGS and s.name not in get_head(head).settings:
                takers = [h for h in strategy.heads if s.name in get_head(h).settings] or [
                    f"{t.name}'s {h}"
                    for t in list_strategies()
                    for h in t.heads
                    if s.name in get_head(h).settings
                ]
                raise TransferlabError(
                    f"{s.name} is not a setting of head {head!r} (strategy {self.strategy!r}); "
                    f"heads that take it: {', '.join(takers)}"
                )
        if strategy.check is not None:
            strategy.check(self, head)

    @property
    def strategy_info(self) -> Strategy:
        return get_strategy(self.strategy)

    def trains_a_network(self, head: str | None = None) -> bool:
        """Whether this run trains with the training loop (so has a step budget): every head but the
        closed-form ones (extract's logreg, svm)."""
        return get_head(head or self.head or self.strategy_info.default_head).trains

    def resolved(self) -> RunSpec:
        """This spec with every strategy default filled in (what actually runs, and what is saved)."""
        strategy = self.strategy_info
        head = self.head or strategy.default_head
        changes: dict[str, Any] = {
            "backbone": self.backbone or strategy.default_backbone,
            "head": head,
            "size": None if self.per_class is not None else (1.0 if self.size is None else float(self.size)),
            "augment": ",".join(
                parse_augment(self.augment if self.augment is not None else strategy.defaults.get("augment"))
            )
            or "none",
            "weight_decay": strategy.defaults.get("weight_decay", 0.0)
            if self.weight_decay is None
            else self.weight_decay,
        }
        if self.weights is not None:  # one name for the weights everywhere (caches, store, report lines)
            changes["backbone"], changes["weights"] = _with_weights(changes["backbone"], self.weights), None
        for name, fill in get_head(head).settings.items():
            if getattr(self, name) is None and fill is not None:
                changes[name] = fill
        if self.input_size == "auto":
            changes["input_size"] = working_resolution(changes["backbone"])
        # The size rule (no epochs, no steps) stops early on validation unless the run has none.
        if (
            self.epochs is None
            and self.steps is None
            and self.patience is None
            and self.val_size != 0
            and self.trains_a_network(head)
        ):
            changes["patience"] = AUTO_PATIENCE
        for s in (*COMMON, *strategy.settings):
            if strategy.takes(s.name) and getattr(self, s.name) is None and s.fill is not None:
                changes[s.name] = s.filled(self)
        if strategy.resolve is not None:
            strategy.resolve(self, changes)
        return dataclasses.replace(self, **changes)

    # --------------------------------------------------------------------------- serialisation

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Build from a mapping; unknown keys are an error naming the valid ones."""
        names = [f.name for f in fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            raise TransferlabError(f"unknown run setting {unknown[0]!r}{options_hint(unknown[0], names)}")
        return cls(**data)

    @classmethod
    def describe(cls) -> dict[str, str]:
        """field name -> its unit/meaning."""
        return {f.name: f.metadata["help"] for f in fields(cls)}


# One flat, frozen dataclass of JSON types: a study expands a TOML grid into these and stores them as rows
# (run ids hash its dict, so a field keeps its name and its None default forever). Built from the settings
# so that a strategy's record is the one place its settings are declared; defined at import, under its
# own module and name, so that specs pickle into worker processes.
RunSpec = dataclasses.make_dataclass(
    "RunSpec",
    [(s.name, s.annotation, field(default=s.default, metadata={"help": s.help})) for s in SETTINGS.values()],
    bases=(_RunSpecBase,),
    frozen=True,
    namespace={
        "__module__": __name__,
        "__doc__": "One run. Every field has a unit or meaning in its ``help`` "
        "metadata (``RunSpec.describe()``); its settings are :data:`SETTINGS`.",
    },
)


def working_resolution(backbone: str) -> int:
    """The side in pixels ``backbone``'s pretrained weights were trained at (``input_size = "auto"``)."""
    from transferlab.models.registry import get_backbone_entry

    entry = get_backbone_entry(backbone)
    if not entry.pretrained:
        raise TransferlabError(
            f"input_size='auto' is the pretrained weights' working resolution, and backbone "
            f"{backbone!r} has no pretrained weights (random init): give input_size in "
            "pixels (e.g. 28 or 32 for the small CNNs)"
        )
    return entry.spec.input_size


def _with_weights(backbone: str, weights: str) -> str:
    """``backbone@/absolute/path`` of a weights file (absolute: a study's workers may run elsewhere)."""
    from pathlib import Path

    if not isinstance(weights, str) or not weights:
        raise TransferlabError(f"weights={weights!r} is invalid; give the path of a state_dict file")
    if "@" in backbone:
        raise TransferlabError(f"weights={weights!r} and backbone {backbone!r} both name weights; give one")
    return f"{backbone}@{Path(weights).expanduser().absolute()}"


@dataclass
class RunResult:
    """What a run produced. Accuracies are fractions in [0, 1], all measured in eval mode with the kept
    weights (``train_accuracy`` on the training subset, for the over-fitting gap); losses are mean
    cross-entropy in nats (None where a head has no probabilities, e.g. svm); seconds are wall-clock. ``history`` has one dict
    per epoch (see :class:`transferlab.train.TrainOutcome`); ``hyperparameters`` holds what was chosen or
    derived during the run (e.g. the svm's C, the source-model cache key, frozen unit names)."""

    spec: dict[str, Any]
    status: str = "ok"  # "ok" | "failed"
    error: str | None = None
    test_accuracy: float | None = None
    test_loss: float | None = None
    val_accuracy: float | None = None
    val_loss: float | None = None
    train_accuracy: float | None = None
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    n_classes: int = 0
    size_label: str = ""
    indices_hash: str = ""
    epochs_run: int = 0
    best_epoch: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0
    features_seconds: float = 0.0
    source_seconds: float = 0.0
    eval_seconds: float = 0.0
    total_seconds: float = 0.0
    code_version: str = ""  # transferlab.version.code_version(): the release + a hash of the source files
    # The resolved training budget and what ran of it (transferlab.train.Budget.record): rule, steps,
    # epochs, images seen, schedule, warmup, checks, patience; empty for heads without one (logreg, svm).
    budget: dict[str, Any] = field(default_factory=dict)
    # Strategy-specific scalar results beyond the fields above (siamese: one-shot accuracy CI, chance,
    # 1-NN baselines), name -> number; the report aggregates each over repeats.
    metrics: dict[str, float] = field(default_factory=dict)
    # The images the run saw, compact (TaskSplit.indices_record; siamese: its training and test splits and
    # one-shot tasks); they reproduce indices_hash. Empty for failed runs and rows stored before it existed.
    indices: dict[str, Any] = field(default_factory=dict)
    # Test confusion counts (strategies.base.confusion_record): {"classes": names, "counts": rows = true,
    # columns = predicted}; empty for siamese, failed runs, more than 100 classes and rows stored before it.
    test_confusion: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**data)
