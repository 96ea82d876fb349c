"""The registries of strategies and heads: what each one is, takes and implies, without importing torch.

A :class:`Strategy` record owns everything the other layers need to know about a strategy: its settings
(typed, with constraints, help and the value an unset one resolves to), the heads it takes, the backbone
it uses by default, the classes it trains on, where it transfers from (pretrained weights, a source
model, source classes; so whether it needs pretrained weights), its place in the report (colour, depth
sweep), whether its runs can share a batched pass, and what ``fit`` exports. Its code lives in
``module`` (``transferlab.strategies.<name>``), imported on first use: validating a spec, expanding a
study or building the CLI reads these records and never loads the training stack.

A :class:`Head` record says which head settings a classifier takes and whether it is trained by the
training loop (a step budget, a history) or fitted in closed form. Registering a name twice raises.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from transferlab.errors import TransferlabError, options_hint
from transferlab.settings import (
    ACTIVATION_NAMES,
    DEFAULT_AUGMENT,
    FC_HIDDEN,
    INITS,
    POOLS,
    Setting,
    at_least,
    fraction,
    number,
    parse_augment,
    positive,
    setting,
)

# --------------------------------------------------------------------------------------------- heads

HEAD_SETTINGS: tuple[Setting, ...] = (
    setting(
        "activation",
        "str | None",
        None,
        "hidden activation of fc1-3 heads: sigmoid | elu | relu (default relu)",
        choices=ACTIVATION_NAMES,
    ),
    setting(
        "init",
        "str | None",
        None,
        "fc1-3 weight init: uniform (U(-0.05, 0.05), the VGG16 study) | default (PyTorch)",
        choices=INITS,
    ),
    setting(
        "dropout",
        "float",
        0.0,
        "dropout probability in fc/gap heads (after each hidden layer; before gap's linear)",
        fraction(low_open=False),
    ),
    setting(
        "C",
        "float | None",
        None,
        "extract's logreg and svm heads: inverse L2 strength, > 0; default 1 for "
        "logreg, chosen by 3-fold CV on the training subset for svm",
        positive(),
    ),
)


@dataclass(frozen=True)
class Head:
    """A classifier a strategy can put on its features. ``trains``: trained by the training loop (has a
    step budget and a per-epoch history) rather than fitted in closed form; ``settings``: the head settings
    it takes, with the value each resolves to when unset (None: stays unset)."""

    name: str
    summary: str
    trains: bool = True
    settings: Mapping[str, Any] = field(default_factory=dict)
    # "module:function" that builds an unfitted head on cached features (sklearn contract) from this record
    # and the run's settings; "" for heads built inside a strategy's network (linear, siamese l1/fc).
    builder: str = ""

    @property
    def on_features(self) -> bool:
        """Whether it is a head on cached features (has a builder, so extract can use it)."""
        return bool(self.builder)

    def build(self, **options):
        """The unfitted head: the builder (imported on first use, so this module needs no torch) called
        with this record and ``options`` (the training and head settings)."""
        if not self.builder:
            feature_heads = [h.name for h in list_heads() if h.on_features]
            raise TransferlabError(
                f"head {self.name!r} is built inside its strategy's network, not on cached features; "
                f"heads on features: {', '.join(feature_heads)}"
            )
        module, function = self.builder.split(":")
        return getattr(importlib.import_module(module), function)(self, **options)


_HEADS: dict[str, Head] = {}


def register_head(head: Head) -> Head:
    if head.name in _HEADS:
        raise TransferlabError(f"head {head.name!r} is already registered")
    unknown = [name for name in head.settings if name not in {s.name for s in HEAD_SETTINGS}]
    if unknown:
        raise TransferlabError(f"head {head.name!r} takes unknown setting {unknown[0]!r}")
    _HEADS[head.name] = head
    return head


def _lookup(kind: str, registry: dict, name: str):
    """``registry[name]``, or one error naming the unknown ``kind`` and the closest registered names."""
    if name not in registry:
        raise TransferlabError(f"unknown {kind} {name!r}{options_hint(str(name), registry)}")
    return registry[name]


def get_head(name: str) -> Head:
    return _lookup("head", _HEADS, name)


def list_heads() -> list[Head]:
    return list(_HEADS.values())


register_head(Head("linear", "one linear layer: the backbone's own classifier, or a new one on its features"))
for _name, _hidden in FC_HIDDEN.items():
    register_head(
        Head(
            _name,
            f"FC stack with hidden units {_hidden} (the VGG16 study's), softmax",
            settings={"activation": "relu", "init": "uniform", "dropout": None},
            builder="transferlab.models.heads:build_fc_head",
        )
    )
register_head(
    Head(
        "gap",
        "global average pooling of the feature map + a linear layer",
        settings={"dropout": None},
        builder="transferlab.models.heads:build_gap_head",
    )
)
register_head(
    Head(
        "logreg",
        "logistic regression on standardised features (closed form, lbfgs)",
        trains=False,
        settings={"C": None},
        builder="transferlab.models.heads:build_logreg_head",
    )
)
register_head(
    Head(
        "svm",
        "linear SVM on standardised features (closed form), C by CV unless given",
        trains=False,
        settings={"C": None},
        builder="transferlab.models.heads:build_svm_head",
    )
)
register_head(
    Head("l1", "siamese: weighted L1 distance of the twins' embeddings, weights >= 0 (the default)")
)
register_head(Head("fc", "siamese: unconstrained linear layer on the L1 distance (Koch et al.)"))


# ----------------------------------------------------------------------------------------- strategies

TRAINS_ON = ("side", "target", "one-shot")
TRANSFER_FROM = ("pretrained", "source-model", "source-classes")
_PRETRAINED_NOTE = "a fine-tuning recipe: it needs pretrained weights to start from"


@dataclass(frozen=True)
class Strategy:
    """A registered strategy (see the module docstring). Hooks take a RunSpec: ``check(spec, head)``
    raises for a combination of settings the strategy cannot run; ``resolve(spec, changes)`` adds the
    defaults that depend on other settings to ``changes`` (after every setting's ``fill``)."""

    name: str
    summary: str
    module: str  # the implementation: fit_evaluate(spec, data, progress=False[, keep]) -> RunResult
    heads: tuple[str, ...]  # the first is the default
    default_backbone: str
    settings: tuple[Setting, ...] = ()  # beyond the settings every strategy takes (runs.COMMON)
    excludes: Mapping[str, str] = field(
        default_factory=dict
    )  # common setting -> why this strategy refuses it
    defaults: Mapping[str, Any] = field(default_factory=dict)  # common settings' defaults that differ here
    trains_on: str = (
        "side"  # the spec's side (every class without a split) | target (after a source model) | one-shot
    )
    transfer_from: str | None = None  # pretrained | source-model | source-classes | None (no transfer)
    transfer_setting: str | None = None  # a setting whose 0 means "no transfer" (snt's base condition)
    sweep: str | None = None  # the depth the report sweeps: transfer (units copied) | frozen (units frozen)
    colour: str = "#000000"  # in the report's figures (Okabe-Ito)
    exports: str | None = None  # what `fit` saves: network | features; None: cannot export a model
    batches: bool = False  # the module has batch_key(spec) and fit_evaluate_batch(specs, data)
    check: Callable[[Any, str], None] | None = None
    resolve: Callable[[Any, dict], None] | None = None

    @property
    def default_head(self) -> str:
        return self.heads[0]

    @property
    def needs_pretrained(self) -> bool:
        """Whether it starts from a backbone's pretrained weights (random init would measure nothing)."""
        return self.transfer_from == "pretrained"

    def takes(self, name: str) -> bool:
        """Whether a strategy-specific or common setting ``name`` is one of this strategy's."""
        return name not in self.excludes and (
            name in self.setting_names or name not in strategy_setting_names()
        )

    @property
    def setting_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings)

    def transfers(self, spec: Mapping[str, Any]) -> bool:
        """Whether a run (its spec as a mapping) transfers anything; snt with transfer=0 is its own baseline."""
        return self.transfer_from is not None and (
            self.transfer_setting is None or bool(spec.get(self.transfer_setting))
        )

    # The implementation, imported on first use (it imports torch).
    @property
    def implementation(self) -> ModuleType:
        return importlib.import_module(self.module)

    def fit_evaluate(self, spec, data, progress: bool = False, **kwargs):
        return self.implementation.fit_evaluate(spec, data, progress=progress, **kwargs)

    def batch_key(self, spec) -> tuple | None:
        """Runs with equal keys train in one batched pass (``fit_evaluate_batch``); None: the run trains alone."""
        if not self.batches:
            return None
        key = self.implementation.batch_key(spec)
        return None if key is None else (self.name, *key)


_STRATEGIES: dict[str, Strategy] = {}


def register_strategy(strategy: Strategy) -> Strategy:
    """Add a strategy record. Its settings become RunSpec fields only if registered before transferlab.runs
    is imported; a later one may only reuse existing setting names (with the same type)."""
    if strategy.name in _STRATEGIES:
        raise TransferlabError(f"strategy {strategy.name!r} is already registered")
    for choice, options in (
        (strategy.trains_on, TRAINS_ON),
        (strategy.transfer_from, (None, *TRANSFER_FROM)),
    ):
        if choice not in options:
            raise TransferlabError(f"strategy {strategy.name!r}: {choice!r} is not one of {options}")
    for head in strategy.heads:
        get_head(head)
    _STRATEGIES[strategy.name] = strategy
    return strategy


def get_strategy(name: str) -> Strategy:
    return _lookup("strategy", _STRATEGIES, name)


def strategy_setting_names() -> set[str]:
    """Every strategy-specific setting name (a common setting is one no strategy declares)."""
    return {s.name for strategy in _STRATEGIES.values() for s in strategy.settings}


def list_strategies() -> list[Strategy]:
    """Registered strategies, in the order the studies introduce them."""
    return list(_STRATEGIES.values())


# ------------------------------------------------------------------------------ the strategies' settings


def _layer(strategy: str) -> Setting:
    return setting(
        "layer",
        "str | None",
        None,
        f"{strategy}: unit (1-based index or name) whose pooled output is the feature",
    )


def _pool() -> Setting:
    return setting(
        "pool",
        "str | None",
        None,
        "feature map -> vector by avg (global average, default) or flatten",
        choices=POOLS,
        fill="avg",
    )


def _frozen(help: str, fill: Any = None) -> Setting:
    return setting("frozen", "int | None", None, help, at_least(0), fill=fill)


def _backbone_lr(help: str, fill: Any = None) -> Setting:
    return setting(
        "backbone_lr",
        "float | None",
        None,
        f"learning rate of the trained pretrained/transferred units, > 0; {help}",
        positive(),
        fill=fill,
    )


def _weights() -> Setting:
    # Only strategies that start from pretrained weights take a file of them; the others start from random init.
    return setting(
        "weights",
        "str | None",
        None,
        "extract, finetune, siamese: a state_dict file the backbone starts "
        "from instead of its default weights (the backbone's native layout, or saved from a Backbone); "
        "resolved into the backbone name as NAME@/absolute/path",
    )


def _check_extract(spec, head: str) -> None:
    if parse_augment(spec.augment):
        raise TransferlabError(
            "extract trains on cached features, so augmentation cannot apply; use augment=none"
        )


def _check_augment(spec, head: str) -> None:
    if spec.augment is not None and not parse_augment(spec.augment):
        raise TransferlabError(
            "the augment strategy needs at least one augmentation (or use strategy scratch)"
        )


def _check_finetune(spec, head: str) -> None:
    if spec.head_init == "probe" and head != "linear":
        raise TransferlabError(
            f"head_init='probe' (LP-FT) starts the linear head from the linear probe; head "
            f"{head!r} is not linear: use head=linear or head_init=random"
        )


def _resolve_finetune(spec, changes: dict) -> None:
    from transferlab.models.registry import get_backbone_entry

    if spec.bn_stats is None and spec.head_init == "probe":
        changes["bn_stats"] = (
            "pretrained"  # LP-FT keeps the statistics the probe's features were computed with
        )
    backbone = get_backbone_entry(changes["backbone"])
    recipe = [
        name for name in ("head_init", "l2_sp", "layer_decay") if getattr(spec, name) not in (None, "random")
    ]
    if recipe and not backbone.pretrained:
        raise TransferlabError(
            f"{recipe[0]}={getattr(spec, recipe[0])!r} needs pretrained weights to start "
            f"from, and backbone {backbone.name!r} has none (random init); choose a "
            "pretrained backbone (transferlab backbones)"
        )
    if spec.head_init == "probe" and changes.get("frozen", spec.frozen) >= len(backbone.describe()["units"]):
        raise TransferlabError(
            "head_init='probe' with every unit frozen is the linear probe itself; "
            "use strategy extract with head=logreg, or freeze fewer units"
        )


def _check_snt(spec, head: str) -> None:
    if spec.transfer is None:
        raise TransferlabError("strategy snt needs transfer=n (units copied from the source model; 0 = base)")
    if spec.frozen is not None and spec.frozen > spec.transfer:
        raise TransferlabError(
            f"frozen={spec.frozen} exceeds transfer={spec.transfer}: only transferred units can "
            "be frozen (frozen=transfer is SnT, frozen=0 is SnT+)"
        )


def _check_siamese(spec, head: str) -> None:
    if spec.swap and spec.source_dataset is not None:
        raise TransferlabError(
            "swap exchanges the two sides of one dataset; with source_dataset give the "
            "datasets the other way round instead"
        )
    if spec.val_classes is not None and spec.val_size == 0:
        raise TransferlabError(
            f"val_classes={spec.val_classes!r} validates on the held-out classes' validation "
            "images, and val_size=0 leaves none; give val_size > 0"
        )
    if spec.frozen is None and parse_augment(spec.augment):
        raise TransferlabError(
            "siamese with every unit frozen trains on cached features, so augmentation "
            "cannot apply; use augment=none or set frozen to leave units trainable"
        )


def _resolve_siamese(spec, changes: dict) -> None:
    # Units train only when some are left unfrozen; with every unit frozen there is no backbone rate.
    changes["backbone_lr"] = changes.get("backbone_lr", spec.backbone_lr) if spec.frozen is not None else None
    # With epochs (the study's protocol) the epoch is chosen on the validation pairs' loss: run every epoch,
    # keep the best one.
    if spec.patience is None and spec.val_size != 0 and spec.epochs is not None:
        changes["patience"] = spec.epochs


register_strategy(
    Strategy(
        name="scratch",
        summary="backbone from random init trained on the subset (baseline)",
        module="transferlab.strategies.scratch",
        heads=("linear",),
        default_backbone="cifar_cnn",
        colour="#555555",
        exports="network",
    )
)
register_strategy(
    Strategy(
        name="augment",
        summary="scratch + training augmentation (mirror, Gaussian noise, random crop, small affine)",
        module="transferlab.strategies.augment",
        heads=("linear",),
        default_backbone="cifar_cnn",
        defaults={"augment": DEFAULT_AUGMENT},
        colour="#E69F00",
        exports="network",
        check=_check_augment,
    )
)
register_strategy(
    Strategy(
        name="extract",
        summary="frozen pretrained backbone -> cached features -> a head (fc1-3, gap, svm, logreg)",
        module="transferlab.strategies.extract",
        heads=("logreg", "fc1", "fc2", "fc3", "gap", "svm"),
        default_backbone="efficientnet_lite0.in1k",
        settings=(_layer("extract, siamese"), _pool(), _weights()),
        excludes={"bn_stats": "its heads have no BatchNorm"},
        transfer_from="pretrained",
        colour="#0072B2",
        exports="features",
        batches=True,
        check=_check_extract,
    )
)
register_strategy(
    Strategy(
        name="finetune",
        summary="pretrained backbone, units 1..k frozen, the rest + a new head trained (k=0: FTall)",
        module="transferlab.strategies.finetune",
        heads=("linear", "fc1", "fc2", "fc3"),
        default_backbone="efficientnet_lite0.in1k",
        settings=(
            _frozen("units 1..k frozen: finetune (default 0 = FTall)", fill=0),
            _backbone_lr("finetune: default lr/10", fill=lambda spec: spec.lr / 10),
            setting(
                "head_init",
                "str | None",
                None,
                "finetune: random (default) | probe (LP-FT, Kumar et al. 2022: the "
                "linear head starts as the converged logistic-regression probe on the frozen features; the start "
                "is a validation check, so it can win)",
                choices=("random", "probe"),
                fill="random",
                note=_PRETRAINED_NOTE,
            ),
            setting(
                "l2_sp",
                "float | None",
                None,
                "finetune: L2-SP (Li et al. 2018) coefficient alpha, >= 0: loss + "
                "alpha/2 * ||w - w_pretrained||^2 over the trained pretrained units",
                (lambda v: number(v) and v >= 0, "a finite coefficient >= 0 (e.g. 0.01)"),
                note=_PRETRAINED_NOTE,
            ),
            setting(
                "layer_decay",
                "float | None",
                None,
                "finetune: discriminative learning rates in (0, 1]: trained "
                "unit i below the top one learns at backbone_lr * layer_decay**i",
                (lambda v: number(v) and 0 < v <= 1, "a factor in (0, 1] (e.g. 0.5)"),
                note=_PRETRAINED_NOTE,
            ),
            _weights(),
        ),
        transfer_from="pretrained",
        sweep="frozen",
        colour="#009E73",
        exports="network",
        check=_check_finetune,
        resolve=_resolve_finetune,
    )
)
register_strategy(
    Strategy(
        name="snt",
        summary="train a source model on the source classes, transfer units 1..n, frozen (SnT) or "
        "fine-tuned (SnT+)",
        module="transferlab.strategies.snt",
        heads=("linear",),
        default_backbone="cifar_cnn",
        settings=(
            setting(
                "transfer",
                "int | None",
                None,
                "snt: units 1..n copied from the source model (0 = base, no transfer)",
                at_least(0),
            ),
            _frozen("snt: units 1..k frozen (default = transfer)", fill=lambda spec: spec.transfer),
            _backbone_lr("snt: default lr (Yosinski)", fill=lambda spec: spec.lr),
            setting(
                "source_size",
                "float",
                1.0,
                "snt: fraction of the source side's training pool the source model learns",
                fraction(),
            ),
            setting(
                "source_epochs",
                "int | None",
                None,
                "snt: epochs of source-model training (default: epochs)",
                at_least(1),
                fill=lambda spec: spec.epochs,
            ),
        ),
        trains_on="target",
        transfer_from="source-model",
        transfer_setting="transfer",
        sweep="transfer",
        colour="#CC79A7",
        exports="network",
        check=_check_snt,
    )
)
register_strategy(
    Strategy(
        name="siamese",
        summary="twin network on a frozen pretrained backbone, trained on same/different pairs of some "
        "classes, scored on N-way one-shot tasks of unseen classes (Koch et al.)",
        module="transferlab.strategies.siamese",
        heads=("l1", "fc"),
        default_backbone="efficientnet_lite0.in1k",
        settings=(
            _layer("extract, siamese"),
            _pool(),
            _frozen("siamese: units 1..k frozen (default None = every unit up to the feature layer)"),
            _backbone_lr("siamese: default lr/10 when frozen is given", fill=lambda spec: spec.lr / 10),
            setting(
                "source_dataset",
                "str | None",
                None,
                "siamese: another dataset whose classes (source, default all) "
                "train the network, tested on dataset's target classes (default all)",
            ),
            setting(
                "n_way",
                "int | None",
                None,
                "siamese: candidates per one-shot test task (N-way), >= 2; default every target class",
                at_least(2),
            ),
            setting(
                "tasks",
                "int | None",
                None,
                "siamese: one-shot test tasks, >= 1 (default 320, the VGG16 study's)",
                at_least(1),
                fill=320,
            ),
            setting(
                "pairs",
                "int | None",
                None,
                "siamese: training pairs, half same-class and half different, >= 1 (default 2000)",
                at_least(1),
                fill=2000,
            ),
            setting(
                "hidden",
                "int | None",
                None,
                "siamese: sigmoid units before the L1 distance, >= 1 (default 4096, the study's)",
                at_least(1),
                fill=4096,
            ),
            setting(
                "val_classes",
                "str | None",
                None,
                "siamese: training classes held out as validation classes (names "
                "or indices, commas; >= 2, leaving >= 2 to train on): the twins first train on the others, stop "
                "and are chosen on pairs and one-shot tasks of these unseen classes (Koch's protocol; val_accuracy "
                "= their one-shot accuracy), then retrain on every training class for the chosen number of steps",
            ),
            _weights(),
        ),
        excludes={
            "side": "it trains on the source classes and is tested on one-shot tasks of the target classes"
        },
        defaults={"weight_decay": 1e-4},
        trains_on="one-shot",
        transfer_from="source-classes",
        colour="#56B4E9",
        check=_check_siamese,
        resolve=_resolve_siamese,
    )
)
