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
import math
from dataclasses import dataclass, field, fields
from typing import Any

from transferlab.data.augment import DEFAULT_AUGMENT, parse_augment
from transferlab.errors import TransferlabError, options_hint
from transferlab.models.backbone import POOLS
from transferlab.models.heads import ACTIVATIONS, FC_HIDDEN, INITS
from transferlab.train import BN_STATS, OPTIMIZERS

SIDES = ("source", "target")
SIAMESE_DEFAULTS = {"tasks": 320, "pairs": 2000, "hidden": 4096}
DEVICES = ("cpu", "cuda", "auto")


def _field(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class RunSpec:
    """One run. Every field has a unit or meaning in its ``help`` metadata (``RunSpec.describe()``)."""

    strategy: str = _field(None, "scratch | augment | extract | finetune | snt | siamese (see transferlab.strategies)")
    dataset: str = _field(None, "built-in dataset name or URI, e.g. fashion-mnist, digits, npz:PATH")
    backbone: str | None = _field(None, "registry name; default: cifar_cnn for scratch/augment/snt, "
                                        "efficientnet_lite0.in1k for extract/finetune")  # fmt: skip
    input_size: int | None = _field(None, "side in pixels the images are resized to; default: the backbone's own")
    head: str | None = _field(None, "classifier: extract takes fc1|fc2|fc3|gap|svm|logreg (default logreg); "
                                    "finetune takes linear|fc1|fc2|fc3 (default linear); scratch, augment and "
                                    "snt train the backbone's own classifier (linear); siamese takes l1 (weighted "
                                    "L1 distance, weights >= 0, default) | fc (unconstrained, Koch's)")  # fmt: skip
    activation: str | None = _field(None, "hidden activation of fc1-3 heads: sigmoid | elu | relu (default relu)")
    init: str | None = _field(None, "fc1-3 weight init: uniform (U(-0.05, 0.05), the VGG16 study) | default (PyTorch)")
    dropout: float = _field(0.0, "dropout probability in fc/gap heads (after each hidden layer; before gap's linear)")
    optimizer: str = _field("adam", "adam | sgd (with momentum)")
    lr: float = _field(1e-3, "learning rate of the head / newly initialised layers, per step, > 0")
    backbone_lr: float | None = _field(None, "learning rate of trained pretrained/transferred units; default "
                                             "lr/10 for finetune, lr for snt (Yosinski)")  # fmt: skip
    momentum: float = _field(0.9, "SGD momentum in [0, 1)")
    weight_decay: float | None = _field(None, "L2 coefficient added to gradients (grad += wd * w), >= 0; default 0 "
                                              "(1e-4 for siamese, the VGG16 study's)")  # fmt: skip
    epochs: int = _field(20, "passes over the training subset, >= 1 (the maximum with patience)")
    batch_size: int = _field(50, "images per optimizer step, >= 1")
    patience: int | None = _field(None, "early stopping: epochs without lower validation loss before stopping "
                                        "and restoring the best epoch; None = fixed epochs")  # fmt: skip
    bn_stats: str = _field("recalibrate", "BatchNorm running statistics: recalibrate (averaged over the training "
                                          "images under the current weights, before each evaluation) | momentum (PyTorch's running average)")  # fmt: skip
    size: float | None = _field(None, "training fraction of each class's pool in (0, 1]; default 1.0")
    per_class: int | None = _field(None, "training images per class (instead of size)")
    val_size: float | int = _field(0.1, "validation: fraction of each class's training images or count per class")
    test_per_class: int | None = _field(None, "cap on test images per class (None = the whole test split)")
    source: str | None = _field(None, "source classes, names or indices separated by commas")
    target: str | None = _field(None, "target classes; with one side given the other is every remaining class")
    side: str = _field("target", "which side non-snt strategies learn when source/target are given")
    swap: bool = _field(False, "exchange source and target (for snt with random halves: B->A instead of A->B)")
    frozen: int | None = _field(None, "units 1..k frozen: finetune (default 0 = FTall), snt (default = transfer) and "
                                      "siamese (default None = every unit up to the feature layer)")  # fmt: skip
    transfer: int | None = _field(None, "snt: units 1..n copied from the source model (0 = base, no transfer)")
    source_size: float = _field(1.0, "snt: fraction of the source side's training pool the source model learns")
    source_epochs: int | None = _field(None, "snt: epochs of source-model training (default: epochs)")
    layer: str | None = _field(None, "extract, siamese: unit (1-based index or name) whose pooled output is the feature")
    pool: str | None = _field(None, "extract, siamese: feature map -> vector by avg (global average, default) or flatten")
    source_dataset: str | None = _field(None, "siamese: another dataset whose classes (source, default all) train the "
                                              "network, tested on dataset's target classes (default all)")  # fmt: skip
    n_way: int | None = _field(None, "siamese: candidates per one-shot test task (N-way), >= 2; default every target class")
    tasks: int | None = _field(None, "siamese: one-shot test tasks, >= 1 (default 320, the VGG16 study's)")
    pairs: int | None = _field(None, "siamese: training pairs, half same-class and half different, >= 1 (default 2000)")
    hidden: int | None = _field(None, "siamese: sigmoid units before the L1 distance, >= 1 (default 4096, the study's)")
    augment: str | None = _field(None, f"training augmentation: comma list of mirror,noise,crop,affine or none; "
                                       f"default none ({DEFAULT_AUGMENT} for the augment strategy)")  # fmt: skip
    seed: int = _field(0, "seed of the subset, validation carve, initialisation, batch order and augmentation")
    device: str = _field("cpu", "cpu | cuda | auto (cuda when available); results are bit-reproducible on cpu")

    # ------------------------------------------------------------------------------ validation

    def __post_init__(self) -> None:
        from transferlab.strategies import get_strategy

        if self.strategy is None or self.dataset is None:
            raise TransferlabError("a run needs a strategy and a dataset")
        # Flat, canonical values: a study file may give a unit index as a number or classes as a list.
        if isinstance(self.layer, int) and not isinstance(self.layer, bool):
            object.__setattr__(self, "layer", str(self.layer))
        for name in ("source", "target"):
            if isinstance(getattr(self, name), (list, tuple)):
                object.__setattr__(self, name, ",".join(str(c) for c in getattr(self, name)))
        get_strategy(self.strategy)  # unknown strategy -> error listing the options
        _positive("lr", self.lr)
        if self.backbone_lr is not None:
            _positive("backbone_lr", self.backbone_lr)
        _whole("epochs", self.epochs, 1)
        _whole("batch_size", self.batch_size, 1)
        _whole("seed", self.seed, 0)
        for name in ("patience", "per_class", "test_per_class", "frozen", "transfer", "source_epochs", "input_size"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), 0 if name in ("frozen", "transfer") else 1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _choice("bn_stats", self.bn_stats, BN_STATS)
        _choice("side", self.side, SIDES)
        _choice("device", self.device, DEVICES)
        if self.pool is not None:
            _choice("pool", self.pool, POOLS)
        if self.activation is not None:
            _choice("activation", self.activation, tuple(ACTIVATIONS))
        if self.init is not None:
            _choice("init", self.init, INITS)
        if not (isinstance(self.dropout, (int, float)) and 0 <= self.dropout < 1):
            raise TransferlabError(f"dropout={self.dropout!r} is invalid; give a probability in [0, 1)")
        if not (isinstance(self.momentum, (int, float)) and 0 <= self.momentum < 1):
            raise TransferlabError(f"momentum={self.momentum!r} is invalid; give a value in [0, 1)")
        for name, minimum in (("n_way", 2), ("tasks", 1), ("pairs", 1), ("hidden", 1)):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), minimum)
        wd = self.weight_decay
        if wd is not None and not (
            isinstance(wd, (int, float)) and not isinstance(wd, bool) and math.isfinite(wd) and wd >= 0
        ):
            raise TransferlabError(f"weight_decay={wd!r} is invalid; give a finite L2 coefficient >= 0")
        if self.size is not None and self.per_class is not None:
            raise TransferlabError("give either size (a fraction) or per_class (a count), not both")
        if self.size is not None and not (isinstance(self.size, (int, float)) and 0 < self.size <= 1):
            raise TransferlabError(f"size={self.size!r} is invalid; give a fraction in (0, 1] (e.g. 0.01 for 1%)")
        if not (isinstance(self.source_size, (int, float)) and 0 < self.source_size <= 1):
            raise TransferlabError(f"source_size={self.source_size!r} is invalid; give a fraction in (0, 1]")
        parse_augment(self.augment)  # unknown augmentation -> error listing the options
        self._check_strategy_fields()

    def _check_strategy_fields(self) -> None:
        """Each strategy takes only the settings it uses (a sweep that sets one elsewhere is a mistake)."""
        strategy = self.strategy_info
        if self.head is not None and self.head not in strategy.heads:
            raise TransferlabError(
                f"head {self.head!r} is not taken by strategy {self.strategy!r}{options_hint(self.head, strategy.heads)}"
            )
        head = self.head or strategy.default_head
        if head not in FC_HIDDEN:
            for name in ("activation", "init"):
                if getattr(self, name) is not None:
                    raise TransferlabError(f"{name} applies to the fc1/fc2/fc3 heads only, not head {head!r}")
        if self.dropout and head not in (*FC_HIDDEN, "gap"):
            raise TransferlabError(f"dropout applies to the fc1-3 and gap heads only, not head {head!r}")
        not_used = {
            "layer": self.strategy not in ("extract", "siamese"),
            "pool": self.strategy not in ("extract", "siamese"),
            "transfer": self.strategy != "snt",
            "source_epochs": self.strategy != "snt",
            "frozen": self.strategy not in ("finetune", "snt", "siamese"),
            "backbone_lr": self.strategy not in ("finetune", "snt", "siamese"),
            **dict.fromkeys(("source_dataset", "n_way", "tasks", "pairs", "hidden"), self.strategy != "siamese"),
        }
        for name, unused in not_used.items():
            if unused and getattr(self, name) is not None:
                raise TransferlabError(f"{name} is not a setting of strategy {self.strategy!r}")
        if self.source_size != 1.0 and self.strategy != "snt":
            raise TransferlabError(f"source_size is not a setting of strategy {self.strategy!r}")
        if self.bn_stats != "recalibrate" and self.strategy == "extract":
            raise TransferlabError("bn_stats is not a setting of strategy 'extract' (its heads have no BatchNorm)")
        if self.strategy == "extract" and parse_augment(self.augment):
            raise TransferlabError("extract trains on cached features, so augmentation cannot apply; use augment=none")
        if self.strategy == "augment" and self.augment is not None and not parse_augment(self.augment):
            raise TransferlabError("the augment strategy needs at least one augmentation (or use strategy scratch)")
        if self.strategy == "siamese":
            self._check_siamese_fields()
        if self.strategy == "snt":
            if self.transfer is None:
                raise TransferlabError("strategy snt needs transfer=n (units copied from the source model; 0 = base)")
            if self.frozen is not None and self.frozen > self.transfer:
                raise TransferlabError(
                    f"frozen={self.frozen} exceeds transfer={self.transfer}: only transferred units can be "
                    "frozen (frozen=transfer is SnT, frozen=0 is SnT+)"
                )

    def _check_siamese_fields(self) -> None:
        if self.side != "target":
            raise TransferlabError("side is not a setting of strategy 'siamese': it trains on the source classes "
                                   "and is tested on one-shot tasks of the target classes")  # fmt: skip
        if self.swap and self.source_dataset is not None:
            raise TransferlabError("swap exchanges the two sides of one dataset; with source_dataset give the "
                                   "datasets the other way round instead")  # fmt: skip
        if self.frozen is None and parse_augment(self.augment):
            raise TransferlabError("siamese with every unit frozen trains on cached features, so augmentation "
                                   "cannot apply; use augment=none or set frozen to leave units trainable")  # fmt: skip

    @property
    def strategy_info(self):
        from transferlab.strategies import get_strategy

        return get_strategy(self.strategy)

    def resolved(self) -> RunSpec:
        """This spec with every strategy default filled in (what actually runs, and what is saved)."""
        strategy = self.strategy_info
        head = self.head or strategy.default_head
        fc = head in FC_HIDDEN
        changes: dict[str, Any] = {
            "backbone": self.backbone or strategy.default_backbone,
            "head": head,
            "activation": (self.activation or "relu") if fc else None,
            "init": (self.init or "uniform") if fc else None,
            "size": None if self.per_class is not None else (1.0 if self.size is None else float(self.size)),
            "augment": ",".join(parse_augment(self.augment if self.augment is not None else
                                              (DEFAULT_AUGMENT if self.strategy == "augment" else None))) or "none",
        }  # fmt: skip
        if self.strategy == "extract":
            changes["pool"] = self.pool or "avg"
        if self.strategy == "finetune":
            changes["frozen"] = 0 if self.frozen is None else self.frozen
            changes["backbone_lr"] = self.lr / 10 if self.backbone_lr is None else self.backbone_lr
        changes["weight_decay"] = (1e-4 if self.strategy == "siamese" else 0.0) if self.weight_decay is None else self.weight_decay
        if self.strategy == "siamese":
            changes["pool"] = self.pool or "avg"
            changes["backbone_lr"] = (self.lr / 10 if self.backbone_lr is None else self.backbone_lr) if self.frozen is not None else None
            changes["tasks"] = self.tasks or SIAMESE_DEFAULTS["tasks"]
            changes["pairs"] = self.pairs or SIAMESE_DEFAULTS["pairs"]
            changes["hidden"] = self.hidden or SIAMESE_DEFAULTS["hidden"]
            # The epoch is chosen on the validation pairs' loss: run every epoch, keep the best one.
            if self.patience is None and self.val_size != 0:
                changes["patience"] = self.epochs
        if self.strategy == "snt":
            changes["frozen"] = self.transfer if self.frozen is None else self.frozen
            changes["backbone_lr"] = self.lr if self.backbone_lr is None else self.backbone_lr
            changes["source_epochs"] = self.source_epochs or self.epochs
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


def _positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise TransferlabError(f"{name}={value!r} is invalid; give a number > 0 (e.g. 1e-3)")


def _whole(name: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise TransferlabError(f"{name}={value!r} is invalid; give a whole number >= {minimum}")


def _choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if value not in options:
        raise TransferlabError(f"{name} {value!r} is unknown{options_hint(str(value), options)}")


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
    code_version: str = ""
    # Strategy-specific scalar results beyond the fields above (siamese: one-shot accuracy CI, chance,
    # 1-NN baselines), name -> number; the report aggregates each over repeats.
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**data)
