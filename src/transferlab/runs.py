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
from transferlab.models.heads import ACTIVATIONS, FC_HIDDEN, INITS, TORCH_HEADS
from transferlab.train import AUTO_PATIENCE, BN_STATS, OPTIMIZERS, SCHEDULES

SIDES = ("source", "target")
SIAMESE_DEFAULTS = {"tasks": 320, "pairs": 2000, "hidden": 4096}
DEVICES = ("cpu", "cuda", "auto")
HEAD_INITS = ("random", "probe")
FINETUNE_RECIPE_FIELDS = ("head_init", "l2_sp", "layer_decay")  # need pretrained weights to start from


def _field(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class RunSpec:
    """One run. Every field has a unit or meaning in its ``help`` metadata (``RunSpec.describe()``)."""

    strategy: str = _field(None, "scratch | augment | extract | finetune | snt | siamese (see transferlab.strategies)")
    dataset: str = _field(None, "built-in dataset name or URI, e.g. fashion-mnist, digits, npz:PATH")
    backbone: str | None = _field(None, "registry name; default: cifar_cnn for scratch/augment/snt, "
                                        "efficientnet_lite0.in1k for extract/finetune")  # fmt: skip
    input_size: int | str | None = _field(None, "side in pixels the images are resized to, or 'auto': the "
                                                "pretrained weights' working resolution (small images are "
                                                "upsampled, BiT-style); default: the backbone's own")  # fmt: skip
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
    epochs: int | None = _field(None, "passes over the training subset, >= 1, at a constant learning rate (the "
                                      "studies' protocols; the maximum with patience); default: the step "
                                      "budget (steps, or the size rule: 50 passes within 200..2000 steps), "
                                      "warmup + cosine decay, early stopping on validation")  # fmt: skip
    steps: int | None = _field(None, "optimizer steps, >= 1, instead of epochs (warmup + cosine decay); default: "
                                     "the size rule when epochs is not given either")  # fmt: skip
    schedule: str | None = _field(None, "learning-rate schedule: constant | cosine (after 5% linear warmup); "
                                        "default constant with epochs, cosine with a step budget")  # fmt: skip
    batch_size: int = _field(50, "images per optimizer step, >= 1")
    patience: int | None = _field(None, "early stopping: validation checks (each epoch with epochs; about 40 per "
                                        "run with a step budget) without lower validation loss before "
                                        "stopping and restoring the best check; default 10 with the size rule, "
                                        "else None = the whole budget")  # fmt: skip
    bn_stats: str | None = _field(None, "BatchNorm running statistics: recalibrate (averaged over the training "
                                        "images under the current weights, before each evaluation; the default) "
                                        "| momentum (PyTorch's running average) | pretrained (the loaded "
                                        "statistics, every BatchNorm in eval mode; LP-FT's default)")  # fmt: skip
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
    head_init: str | None = _field(None, "finetune: random (default) | probe (LP-FT, Kumar et al. 2022: the linear "
                                         "head starts as the converged logistic-regression probe on the frozen "
                                         "features; the start is a validation check, so it can win)")  # fmt: skip
    l2_sp: float | None = _field(None, "finetune: L2-SP (Li et al. 2018) coefficient alpha, >= 0: loss + alpha/2 * "
                                       "||w - w_pretrained||^2 over the trained pretrained units")  # fmt: skip
    layer_decay: float | None = _field(None, "finetune: discriminative learning rates in (0, 1]: trained unit i "
                                             "below the top one learns at backbone_lr * layer_decay**i")  # fmt: skip
    transfer: int | None = _field(None, "snt: units 1..n copied from the source model (0 = base, no transfer)")
    source_size: float = _field(1.0, "snt: fraction of the source side's training pool the source model learns")
    source_epochs: int | None = _field(None, "snt: epochs of source-model training (default: epochs)")
    layer: str | None = _field(None, "extract, siamese: unit (1-based index or name) whose pooled output is the feature")
    pool: str | None = _field(None, "extract, siamese: feature map -> vector by avg (global average, default) or flatten")
    C: float | None = _field(None, "extract's logreg and svm heads: inverse L2 strength, > 0; default 1 for logreg, "
                                   "chosen by 3-fold CV on the training subset for svm")  # fmt: skip
    source_dataset: str | None = _field(None, "siamese: another dataset whose classes (source, default all) train the "
                                              "network, tested on dataset's target classes (default all)")  # fmt: skip
    n_way: int | None = _field(None, "siamese: candidates per one-shot test task (N-way), >= 2; default every target class")
    tasks: int | None = _field(None, "siamese: one-shot test tasks, >= 1 (default 320, the VGG16 study's)")
    pairs: int | None = _field(None, "siamese: training pairs, half same-class and half different, >= 1 (default 2000)")
    hidden: int | None = _field(None, "siamese: sigmoid units before the L1 distance, >= 1 (default 4096, the study's)")
    val_classes: str | None = _field(None, "siamese: training classes held out as validation classes (names or "
                                           "indices, commas; >= 2, leaving >= 2 to train on): the twins first "
                                           "train on the others, stop and are chosen on pairs and one-shot tasks "
                                           "of these unseen classes (Koch's protocol; val_accuracy = their one-shot "
                                           "accuracy), then retrain on every training class for the chosen "
                                           "number of steps")  # fmt: skip
    augment: str | None = _field(None, f"training augmentation: comma list of mirror,noise,crop,affine or none; "
                                       f"default none ({DEFAULT_AUGMENT} for the augment strategy)")  # fmt: skip
    seed: int = _field(0, "seed of the subset, validation carve, initialisation, batch order and augmentation")
    device: str = _field("cpu", "cpu | cuda | auto (cuda when available); results are bit-reproducible on cpu")
    weights: str | None = _field(None, "extract, finetune, siamese: a state_dict file the backbone starts from instead "
                                       "of its default weights (the backbone's native layout, or saved from a "
                                       "Backbone); resolved into the backbone name as NAME@/absolute/path")  # fmt: skip

    # ------------------------------------------------------------------------------ validation

    def __post_init__(self) -> None:
        from transferlab.strategies import get_strategy

        if self.strategy is None or self.dataset is None:
            raise TransferlabError("a run needs a strategy and a dataset")
        # Flat, canonical values: a study file may give a unit index as a number or classes as a list.
        if isinstance(self.layer, int) and not isinstance(self.layer, bool):
            object.__setattr__(self, "layer", str(self.layer))
        for name in ("source", "target", "val_classes"):
            if isinstance(getattr(self, name), (list, tuple)):
                object.__setattr__(self, name, ",".join(str(c) for c in getattr(self, name)))
        get_strategy(self.strategy)  # unknown strategy -> error listing the options
        _positive("lr", self.lr)
        if self.backbone_lr is not None:
            _positive("backbone_lr", self.backbone_lr)
        _whole("batch_size", self.batch_size, 1)
        _whole("seed", self.seed, 0)
        if self.input_size != "auto" and self.input_size is not None:
            if isinstance(self.input_size, str) or isinstance(self.input_size, bool) or not isinstance(self.input_size, int):
                raise TransferlabError(f"input_size={self.input_size!r} is invalid; give a whole number of pixels "
                                       ">= 1 or 'auto' (the pretrained weights' working resolution)")  # fmt: skip
        for name in ("epochs", "steps"):
            if getattr(self, name) is not None and (isinstance(getattr(self, name), bool)
                                                    or not isinstance(getattr(self, name), int) or getattr(self, name) < 1):  # fmt: skip
                raise TransferlabError(f"{name}={getattr(self, name)!r} is invalid: a budget needs at least one "
                                       "optimizer step; give a whole number >= 1")  # fmt: skip
        if self.epochs is not None and self.steps is not None:
            raise TransferlabError(f"give either epochs ({self.epochs}) or steps ({self.steps}) as the training "
                                   "budget, not both")  # fmt: skip
        if self.schedule is not None:
            _choice("schedule", self.schedule, SCHEDULES)
        if self.head_init is not None:
            _choice("head_init", self.head_init, HEAD_INITS)
        if self.l2_sp is not None and not (_number(self.l2_sp) and self.l2_sp >= 0):
            raise TransferlabError(f"l2_sp={self.l2_sp!r} is invalid; give a finite coefficient >= 0 (e.g. 0.01)")
        if self.layer_decay is not None and not (_number(self.layer_decay) and 0 < self.layer_decay <= 1):
            raise TransferlabError(f"layer_decay={self.layer_decay!r} is invalid; give a factor in (0, 1] (e.g. 0.5)")
        for name in ("patience", "per_class", "test_per_class", "frozen", "transfer", "source_epochs"):
            if getattr(self, name) is not None:
                _whole(name, getattr(self, name), 0 if name in ("frozen", "transfer") else 1)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        if self.bn_stats is not None:
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
        if self.weight_decay is not None and not (_number(self.weight_decay) and self.weight_decay >= 0):
            raise TransferlabError(f"weight_decay={self.weight_decay!r} is invalid; give a finite L2 coefficient >= 0")
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
        if self.C is not None:  # tuned on validation by a study (issue 15: equal tuning budgets)
            _positive("C", self.C)
            if self.strategy != "extract" or head not in ("logreg", "svm"):
                raise TransferlabError(f"C applies to extract's logreg and svm heads only, not strategy "
                                       f"{self.strategy!r} with head {head!r}")  # fmt: skip
        not_used = {
            "layer": self.strategy not in ("extract", "siamese"),
            "pool": self.strategy not in ("extract", "siamese"),
            "transfer": self.strategy != "snt",
            **dict.fromkeys(FINETUNE_RECIPE_FIELDS, self.strategy != "finetune"),
            "source_epochs": self.strategy != "snt",
            "weights": self.strategy not in ("extract", "finetune", "siamese"),  # the others start from random init
            "frozen": self.strategy not in ("finetune", "snt", "siamese"),
            "backbone_lr": self.strategy not in ("finetune", "snt", "siamese"),
            **dict.fromkeys(("source_dataset", "n_way", "tasks", "pairs", "hidden", "val_classes"),
                            self.strategy != "siamese"),  # fmt: skip
        }
        for name, unused in not_used.items():
            if unused and getattr(self, name) is not None:
                needs = " (a fine-tuning recipe: it needs pretrained weights to start from; strategy finetune)" \
                    if name in FINETUNE_RECIPE_FIELDS else ""  # fmt: skip
                raise TransferlabError(f"{name} is not a setting of strategy {self.strategy!r}{needs}")
        if self.head_init == "probe" and head != "linear":
            raise TransferlabError(f"head_init='probe' (LP-FT) starts the linear head from the linear probe; head "
                                   f"{head!r} is not linear: use head=linear or head_init=random")  # fmt: skip
        if self.source_size != 1.0 and self.strategy != "snt":
            raise TransferlabError(f"source_size is not a setting of strategy {self.strategy!r}")
        if self.bn_stats is not None and self.strategy == "extract":
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
        if self.val_classes is not None and self.val_size == 0:
            raise TransferlabError(f"val_classes={self.val_classes!r} validates on the held-out classes' validation "
                                   "images, and val_size=0 leaves none; give val_size > 0")  # fmt: skip
        if self.frozen is None and parse_augment(self.augment):
            raise TransferlabError("siamese with every unit frozen trains on cached features, so augmentation "
                                   "cannot apply; use augment=none or set frozen to leave units trainable")  # fmt: skip

    @property
    def strategy_info(self):
        from transferlab.strategies import get_strategy

        return get_strategy(self.strategy)

    def trains_a_network(self, head: str | None = None) -> bool:
        """Whether this run trains with the training loop (so has a step budget): every strategy but extract
        with a closed-form head (logreg, svm)."""
        return self.strategy != "extract" or (head or self.head or self.strategy_info.default_head) in TORCH_HEADS

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
        if self.weights is not None:  # one name for the weights everywhere (caches, store, report lines)
            changes["backbone"], changes["weights"] = _with_weights(changes["backbone"], self.weights), None
        backbone = changes["backbone"]
        if self.input_size == "auto":
            changes["input_size"] = working_resolution(backbone)
        # The size rule (no epochs, no steps) stops early on validation unless the run has none.
        if (self.epochs is None and self.steps is None and self.patience is None and self.val_size != 0
                and self.trains_a_network(head)):
            changes["patience"] = AUTO_PATIENCE
        if self.strategy == "extract":
            changes["pool"] = self.pool or "avg"
        else:
            changes["bn_stats"] = self.bn_stats or "recalibrate"
        if self.strategy == "finetune":
            changes["frozen"] = 0 if self.frozen is None else self.frozen
            changes["backbone_lr"] = self.lr / 10 if self.backbone_lr is None else self.backbone_lr
            changes["head_init"] = self.head_init or "random"
            if self.bn_stats is None and changes["head_init"] == "probe":
                changes["bn_stats"] = "pretrained"
            recipe = [name for name in FINETUNE_RECIPE_FIELDS if getattr(self, name) not in (None, "random")]
            if recipe and not _pretrained(backbone):
                raise TransferlabError(f"{recipe[0]}={getattr(self, recipe[0])!r} needs pretrained weights to start "
                                       f"from, and backbone {backbone!r} has none (random init); choose a "
                                       "pretrained backbone (transferlab backbones)")  # fmt: skip
            if self.head_init == "probe" and changes["frozen"] >= len(_units(backbone)):
                raise TransferlabError("head_init='probe' with every unit frozen is the linear probe itself; "
                                       "use strategy extract with head=logreg, or freeze fewer units")  # fmt: skip
        changes["weight_decay"] = (1e-4 if self.strategy == "siamese" else 0.0) if self.weight_decay is None else self.weight_decay
        if self.strategy == "siamese":
            changes["pool"] = self.pool or "avg"
            changes["backbone_lr"] = (self.lr / 10 if self.backbone_lr is None else self.backbone_lr) if self.frozen is not None else None
            changes["tasks"] = self.tasks or SIAMESE_DEFAULTS["tasks"]
            changes["pairs"] = self.pairs or SIAMESE_DEFAULTS["pairs"]
            changes["hidden"] = self.hidden or SIAMESE_DEFAULTS["hidden"]
            # With epochs (the study's protocol) the epoch is chosen on the validation pairs' loss: run every
            # epoch, keep the best one.
            if self.patience is None and self.val_size != 0 and self.epochs is not None:
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


def working_resolution(backbone: str) -> int:
    """The side in pixels ``backbone``'s pretrained weights were trained at (``input_size = "auto"``)."""
    from transferlab.models.registry import get_backbone_entry

    entry = get_backbone_entry(backbone)
    if not entry.pretrained:
        raise TransferlabError(f"input_size='auto' is the pretrained weights' working resolution, and backbone "
                               f"{backbone!r} has no pretrained weights (random init): give input_size in "
                               "pixels (e.g. 28 or 32 for the small CNNs)")  # fmt: skip
    return entry.spec.input_size


def _with_weights(backbone: str, weights: str) -> str:
    """``backbone@/absolute/path`` of a weights file (absolute: a study's workers may run elsewhere)."""
    from pathlib import Path

    if not isinstance(weights, str) or not weights:
        raise TransferlabError(f"weights={weights!r} is invalid; give the path of a state_dict file")
    if "@" in backbone:
        raise TransferlabError(f"weights={weights!r} and backbone {backbone!r} both name weights; give one")
    return f"{backbone}@{Path(weights).expanduser().absolute()}"


def _pretrained(backbone: str) -> bool:
    from transferlab.models.registry import get_backbone_entry

    return get_backbone_entry(backbone).pretrained


def _units(backbone: str) -> list[str]:
    from transferlab.models.registry import get_backbone_entry

    return get_backbone_entry(backbone).describe()["units"]


def _number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        return cls(**data)
