"""From a study's stored runs to the numbers a report shows.

Finished runs are grouped by task (dataset and classes), configuration (every spec field except the
repeat fields ``seed`` and ``swap``, the size fields and ``device``) and training size, and aggregated over
the repeats: seeds, and both transfer directions (A->B and B->A) when a study ran both. Each group is a
:class:`Cell` with the mean, sample standard deviation, n and 95% t-interval of its test and validation
accuracy.

Claim: a configuration is only ever chosen on validation accuracy, and reported with test accuracy.
Evidence: :func:`best_by_validation` is the one place a cell is chosen and reads only ``cell.val``; the
tests build stores whose validation and test rankings disagree and check which one wins.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats as scipy_stats

from transferlab.catalog import get_strategy, list_strategies
from transferlab.study.store import Store

CONFIDENCE = 0.95
REPEAT_FIELDS = ("seed", "swap")  # aggregated over
SIZE_FIELDS = ("size", "per_class")  # the x axis
NOT_CONFIG_FIELDS = (*REPEAT_FIELDS, *SIZE_FIELDS, "device")  # device: how a run ran, not what it was
# Fields an arm may choose on validation inside one size-curve line: optimisation settings of one recipe.
# Every other field that varies (backbone, head, layer, input_size, frozen, transfer, recipe fields, ...)
# separates lines, so a line never joins two configurations: a line mixing unit 5 at one size with the top
# unit at another, or 64 with 224 px, would hide the very axis the study asked about.
TUNING_FIELDS = (
    "lr",
    "C",
    "weight_decay",
    "momentum",
    "dropout",
    "backbone_lr",
    "batch_size",
    "optimizer",
    "epochs",
    "steps",
    "schedule",
    "patience",
)
# The order in which fields are named when a configuration is described (the most telling first); fields
# not listed follow alphabetically, tuning fields last.
DESCRIBE_ORDER = (
    "backbone",
    "head",
    "source",
    "augment",
    "input_size",
    "layer",
    "transfer",
    "frozen",
    "head_init",
    "l2_sp",
    "layer_decay",
    "hidden",
    "activation",
    "init",
    "pool",
    "bn_stats",
)
ROLES = ("baseline", "augmentation", "transfer")
ROLE_HELP = {
    "baseline": "no transfer, no augmentation (scratch, or snt with transfer=0)",
    "augmentation": "no transfer, with augmentation (augment)",
    "transfer": "pretrained or source-trained units (extract, finetune, snt with transfer>0)",
}


@dataclass(frozen=True)
class Stat:
    """Mean of ``n`` accuracies (fractions), their sample std (ddof=1) and the half-width of the 95%
    t-interval of the mean; ``std`` and ``ci_half`` are None when n < 2 (no spread is measurable).
    ``keys`` name the split each value was measured on (a run's ``indices_hash``, with its direction), so
    that two arms measured on the same splits can be compared split by split (:meth:`Gain.between`)."""

    mean: float
    std: float | None
    n: int
    ci_half: float | None
    values: tuple[float, ...] = field(default=(), compare=False)
    keys: tuple[str, ...] | None = field(default=None, compare=False)

    @classmethod
    def of(cls, values: Sequence[float], keys: Sequence[str] | None = None) -> Stat:
        n = len(values)
        if n == 0:
            raise ValueError("Stat.of needs at least one value")
        if keys is not None and len(keys) != n:
            raise ValueError(f"Stat.of got {n} values but {len(keys)} keys")
        mean = math.fsum(values) / n
        values, keys = tuple(float(v) for v in values), None if keys is None else tuple(keys)
        if n < 2:
            return cls(mean, None, n, None, values, keys)
        std = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
        half = _t_quantile(n - 1) * std / math.sqrt(n)
        return cls(mean, std, n, half, values, keys)

    @property
    def ci_low(self) -> float | None:
        return None if self.ci_half is None else self.mean - self.ci_half

    @property
    def ci_high(self) -> float | None:
        return None if self.ci_half is None else self.mean + self.ci_half

    def text(self, digits: int = 3) -> str:
        """'0.812 ± 0.011 (n=3)' (± the std) or '0.812 (n=1)'."""
        spread = "" if self.std is None else f" ± {self.std:.{digits}f}"
        return f"{self.mean:.{digits}f}{spread} (n={self.n})"


@dataclass(frozen=True)
class Gain:
    """Accuracy of a treatment against a reference: ``absolute`` = difference of the means (accuracy
    points as a fraction), ``relative`` = their ratio (None when the reference mean is 0), ``ci_half`` =
    half-width of the 95% interval of the difference (None when either side has n < 2).

    The interval is paired (``paired`` True: the t-interval of the per-split differences) when both arms
    were measured on the same splits, one value per split: every arm of a study sees the same train, val
    and test images for a given seed and size, so split-to-split variation (which images were drawn) is
    shared and cancels in the difference; otherwise it is Welch's interval of two independent means."""

    absolute: float
    relative: float | None
    ci_half: float | None
    paired: bool = False

    @classmethod
    def between(cls, treatment: Stat, reference: Stat) -> Gain:
        relative = treatment.mean / reference.mean if reference.mean else None
        absolute = treatment.mean - reference.mean
        differences = _paired_differences(treatment, reference)
        if differences is not None:
            d = Stat.of(differences)
            return cls(absolute, relative, d.ci_half, paired=True)
        return cls(absolute, relative, _welch_half_width(treatment, reference))

    @property
    def method(self) -> str:
        """'paired' or 'Welch': how ``ci_half`` was computed."""
        return "paired" if self.paired else "Welch"

    @property
    def percent(self) -> float | None:
        """Relative gain as a percentage change: 100 * (ratio - 1)."""
        return None if self.relative is None else 100.0 * (self.relative - 1.0)

    def text(self) -> str:
        """'+0.090 (x1.12)'."""
        ratio = "" if self.relative is None else f" (×{self.relative:.2f})"
        return f"{self.absolute:+.3f}{ratio}"


def _t_quantile(dof: float) -> float:
    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, dof))


def _paired_differences(a: Stat, b: Stat) -> list[float] | None:
    """a - b split by split when both were measured once on each of the same n >= 2 splits, else None."""
    if a.keys is None or b.keys is None or a.n < 2 or a.n != b.n:
        return None
    by_key_a, by_key_b = dict(zip(a.keys, a.values, strict=True)), dict(zip(b.keys, b.values, strict=True))
    if len(by_key_a) != a.n or len(by_key_b) != b.n or by_key_a.keys() != by_key_b.keys():
        return None
    return [by_key_a[k] - by_key_b[k] for k in sorted(by_key_a)]


def _welch_half_width(a: Stat, b: Stat) -> float | None:
    if a.std is None or b.std is None:
        return None
    va, vb = a.std**2 / a.n, b.std**2 / b.n
    se = math.sqrt(va + vb)
    if se == 0.0:
        return 0.0
    dof = (va + vb) ** 2 / (va**2 / (a.n - 1) + vb**2 / (b.n - 1))
    return _t_quantile(dof) * se


@dataclass(frozen=True)
class SizeKey:
    """A training size as the spec gave it: a fraction of each class's pool, or images per class."""

    kind: str  # "fraction" | "per_class"
    value: float

    @classmethod
    def of(cls, spec: dict) -> SizeKey:
        if spec.get("per_class") is not None:
            return cls("per_class", int(spec["per_class"]))
        return cls("fraction", float(spec.get("size") if spec.get("size") is not None else 1.0))

    @property
    def label(self) -> str:
        return f"{self.value:g}/class" if self.kind == "per_class" else f"{100 * self.value:g}%"


@dataclass(frozen=True)
class Config:
    """One configuration: the spec fields that are neither repeats nor the size, as sorted pairs."""

    items: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, spec: dict) -> Config:
        return cls(tuple(sorted((k, _hashable(v)) for k, v in spec.items() if k not in NOT_CONFIG_FIELDS)))

    def get(self, name: str, default: Any = None) -> Any:
        if name == "variant":
            return self.variant
        return dict(self.items).get(name, default)

    @property
    def strategy(self) -> str:
        return str(self.get("strategy"))

    @property
    def variant(self) -> str:
        """snt's condition (Yosinski's names): base (transfer=0), frozen (SnT: frozen=transfer), fine-tuned
        (SnT+: frozen=0) or partly frozen; empty for every other strategy."""
        if get_strategy(self.strategy).sweep != "transfer":
            return ""
        transfer, frozen = self.get("transfer") or 0, self.get("frozen") or 0
        if transfer == 0:
            return "base"
        if frozen == transfer:
            return "frozen"
        return "fine-tuned" if frozen == 0 else f"{frozen} of {transfer} frozen"

    @property
    def role(self) -> str:
        """baseline | augmentation | transfer (see ROLE_HELP)."""
        if get_strategy(self.strategy).transfers(self):
            return "transfer"
        return "augmentation" if self.get("augment") not in (None, "none") else "baseline"

    def line_key(self) -> tuple:
        """(strategy, every (field, value) but the tuning fields): cells with one key form one line."""
        return (self.strategy, *((k, v) for k, v in self.items if k not in TUNING_FIELDS))

    def describe(self, names: Iterable[str]) -> str:
        """'extract · head=fc2 · lr=0.001': the strategy (and snt variant), then ``names`` that are set."""
        parts = [self.strategy + (f" {self.variant}" if self.variant else "")]
        for name in names:
            if name in ("strategy", "variant"):
                continue
            value = self.get(name)
            if value is not None:
                parts.append(f"{name}={_short(value)}")
        return " · ".join(parts)


def _hashable(value: Any) -> Any:
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _short(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Cell:
    """One configuration of one task at one size, over its repeats. Accuracies are fractions."""

    task: str
    config: Config
    size: SizeKey
    n_train: int  # training images (mean over the repeats, rounded)
    n_classes: int
    test: Stat
    val: Stat | None  # None when no repeat recorded a validation accuracy
    run_ids: tuple[str, ...]
    directions: int  # distinct swap values pooled (2 = A->B and B->A averaged)
    metrics: dict[str, Stat] = field(
        default_factory=dict, compare=False
    )  # RunResult.metrics over the repeats
    seconds: Stat | None = field(default=None, compare=False)  # wall-clock seconds per run (total_seconds)
    run_seconds: tuple[float, ...] = field(default=(), compare=False)  # ... of each timed run
    # Test confusion counts summed over the repeats ({"classes", "counts"}: rows true, columns predicted);
    # None unless every repeat stored one over the same classes.
    confusion: dict | None = field(default=None, compare=False)


def best_by_validation(cells: Iterable[Cell]) -> Cell | None:
    """The cell with the highest mean validation accuracy (ties: more repeats, then the configuration's
    sort order); None when no cell has a validation accuracy. Test accuracy is never read here."""
    candidates = [c for c in cells if c.val is not None]
    if not candidates:
        return None
    return min(candidates, key=lambda c: (-c.val.mean, -c.val.n, repr(c.config.items)))


@dataclass(frozen=True)
class Choice:
    """A cell chosen on validation and its tuning budget: ``n_configs`` configurations competed (cells
    with a validation accuracy), and ``tuned`` maps each field that varied among them to its sorted
    values. Arms chosen from more configurations have more chances at a lucky validation score, so a
    fair comparison gives each the same number (VTAB's protocol: tune on validation, test once)."""

    cell: Cell
    n_configs: int
    tuned: dict[str, tuple] = field(compare=False)

    @classmethod
    def among(cls, cells: Iterable[Cell]) -> Choice | None:
        """The choice of :func:`best_by_validation` among ``cells``; None when none has a validation accuracy."""
        candidates = [c for c in cells if c.val is not None]
        chosen = best_by_validation(candidates)
        if chosen is None:
            return None
        values: dict[str, set] = defaultdict(set)
        for cell in candidates:
            for name, value in cell.config.items:
                values[name].add(value)
        # Unset values (a field another strategy's runs leave None) are left out, and so is a field with a
        # single set value: that variation is already told by the field that does vary (e.g. strategy).
        tuned = {
            name: tuple(sorted(set_values, key=_sort_key))
            for name, vals in sorted(values.items())
            if len(vals) > 1 and len(set_values := vals - {None}) > 1
        }
        return cls(chosen, len(candidates), tuned)

    def tuned_text(self) -> str:
        """'lr ∈ {0.0001, 0.001, 0.01}; head ∈ {fc1, fc2}' (empty when nothing was tuned)."""
        return "; ".join(f"{name} ∈ {{{', '.join(map(_short, vals))}}}" for name, vals in self.tuned.items())

    def text(self) -> str:
        """'3 configurations (lr ∈ {0.0001, 0.001, 0.01})' or '1 configuration'."""
        count = f"{self.n_configs} configuration{'s' if self.n_configs != 1 else ''}"
        return count + (f" ({self.tuned_text()})" if self.tuned else "")


def _sort_key(value: Any) -> tuple:
    """Numbers in numeric order first, then anything else by its text (a field's values may mix types)."""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return (0, value, "") if number else (1, 0, str(value))


@dataclass
class Task:
    """Every cell of one task (a dataset and its classes), with the sizes ordered by training images."""

    label: str
    cells: list[Cell]
    sizes: list[SizeKey] = field(init=False)
    n_train: dict[SizeKey, int] = field(init=False)
    varying: list[str] = field(init=False)  # config fields with more than one value in this task
    _varying_within: dict[str, list[str]] = field(init=False, repr=False)  # ... among one strategy's cells
    _telling: dict[str, list[str]] = field(
        init=False, repr=False, default_factory=dict
    )  # telling_fields' cache

    def __post_init__(self) -> None:
        by_size: dict[SizeKey, list[int]] = defaultdict(list)
        for cell in self.cells:
            by_size[cell.size].append(cell.n_train)
        self.n_train = {s: round(sum(v) / len(v)) for s, v in by_size.items()}
        self.sizes = sorted(by_size, key=lambda s: (self.n_train[s], s.kind, s.value))
        values: dict[str, set] = defaultdict(set)
        for cell in self.cells:
            for name, value in cell.config.items:
                values[name].add(value)
            values["variant"].add(cell.config.variant)
        self.varying = sorted(name for name, v in values.items() if len(v) > 1)
        within: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
        for cell in self.cells:
            for name, value in (*cell.config.items, ("variant", cell.config.variant)):
                within[cell.config.strategy][name].add(value)
        self._varying_within = {
            strategy: sorted(n for n, v in vals.items() if len(v) > 1) for strategy, vals in within.items()
        }

    @property
    def n_classes(self) -> int:
        return Counter(c.n_classes for c in self.cells).most_common(1)[0][0]

    @property
    def chance(self) -> float:
        """Accuracy of guessing uniformly: 1 / classes."""
        return 1.0 / self.n_classes if self.n_classes else 0.0

    def size_text(self, size: SizeKey) -> str:
        """'1% (600 images)'."""
        return f"{size.label} ({self.n_train[size]:,} images)"

    def at(self, size: SizeKey, role: str | None = None, strategy: str | None = None) -> list[Cell]:
        return [
            c
            for c in self.cells
            if c.size == size
            and (role is None or c.config.role == role)
            and (strategy is None or c.config.strategy == strategy)
        ]

    def best(self, size: SizeKey, role: str | None = None, strategy: str | None = None) -> Cell | None:
        """The configuration chosen on validation among those of ``role`` / ``strategy`` at ``size``."""
        return best_by_validation(self.at(size, role, strategy))

    def choice(self, size: SizeKey, role: str | None = None, strategy: str | None = None) -> Choice | None:
        """:meth:`best` with the configurations it was chosen from (its tuning budget)."""
        return Choice.among(self.at(size, role, strategy))

    def strategies(self) -> list[str]:
        return _ordered({c.config.strategy for c in self.cells}, STRATEGY_ORDER)

    def line_fields(self) -> list[str]:
        """The fields that separate size-curve lines in this task and are named in their labels: strategy,
        and each strategy's :meth:`telling_fields` that are not tuning fields."""
        names = {
            f
            for strategy in self.strategies()
            for f in self.telling_fields(strategy)
            if f not in TUNING_FIELDS
        }
        return ["strategy", *_describe_order(names)]

    def tuned_fields(self) -> list[str]:
        """The tuning fields that some line really chose on validation: more than one value among the
        cells of one line at one size (empty when every point of every line is a single configuration)."""
        values: dict[tuple, dict[str, set]] = defaultdict(lambda: defaultdict(set))
        for cell in self.cells:
            for name, value in cell.config.items:
                if name in TUNING_FIELDS:
                    values[(cell.config.line_key(), cell.size)][name].add(value)
        chosen = {name for fields in values.values() for name, vals in fields.items() if len(vals) > 1}
        return [f for f in TUNING_FIELDS if f in chosen]

    def lines(self) -> dict[tuple, dict[SizeKey, Cell]]:
        """Size-curve lines: per :meth:`Config.line_key`, the cell chosen on validation at each size (only
        the tuning fields differ among the cells a line chooses from)."""
        grouped: dict[tuple, dict[SizeKey, list[Cell]]] = defaultdict(lambda: defaultdict(list))
        for cell in self.cells:
            grouped[cell.config.line_key()][cell.size].append(cell)
        lines = {}
        for key in sorted(grouped, key=lambda k: (_strategy_rank(k[0]), repr(k))):
            chosen = {s: best_by_validation(cs) for s, cs in grouped[key].items()}
            chosen = {s: c for s, c in chosen.items() if c is not None}
            if chosen:
                lines[key] = dict(sorted(chosen.items(), key=lambda item: self.sizes.index(item[0])))
        return lines

    def varying_within(self, strategy: str) -> list[str]:
        """Config fields (and ``variant``) with more than one value among the strategy's cells."""
        return self._varying_within.get(strategy, [])

    def telling_fields(self, strategy: str) -> list[str]:
        """The fields that tell the strategy's configurations apart, in :data:`DESCRIBE_ORDER`: each varies
        among the strategy's cells and is not already determined by the fields named before it (fc2's
        activation=relu is told by head=fc2 against logreg; layer=5 against the top layer is not).
        The backbone is named whenever it varies in the task."""
        if strategy in self._telling:
            return self._telling[strategy]
        cells = [c for c in self.cells if c.config.strategy == strategy]
        candidates = _describe_order([f for f in self.varying_within(strategy) if f != "variant"])
        names = ["backbone"] if "backbone" in self.varying else []
        candidates = [f for f in candidates if f not in names]
        for name in [f for f in candidates if f not in TUNING_FIELDS] + [
            f for f in candidates if f in TUNING_FIELDS
        ]:
            seen: dict[tuple, set] = defaultdict(set)
            for cell in cells:
                seen[tuple(cell.config.get(n) for n in names)].add(cell.config.get(name))
            if any(len(v) > 1 for v in seen.values()):
                names.append(name)
        self._telling[strategy] = names
        return names

    def describe(self, config: Config, full: bool = True) -> str:
        """A configuration in as few words as tell it apart: the strategy (and snt variant), the backbone
        when the task has several, the fields of :meth:`telling_fields` that separate lines, and with
        ``full`` also the tuning fields (lr, ...) among them."""
        names = [f for f in self.telling_fields(config.strategy) if full or f not in TUNING_FIELDS]
        if config.variant in ("base", "frozen", "fine-tuned"):  # the variant already says how many are frozen
            names = [f for f in names if f != "frozen" and not (f == "transfer" and config.variant == "base")]
        return config.describe(names)


def _describe_order(names: Iterable[str]) -> list[str]:
    def rank(name: str) -> tuple:
        if name in DESCRIBE_ORDER:
            return (0, DESCRIBE_ORDER.index(name), name)
        return (2 if name in TUNING_FIELDS else 1, 0, name)

    return sorted(names, key=rank)


STRATEGY_ORDER = tuple(s.name for s in list_strategies())


def _strategy_rank(name: str) -> int:
    return STRATEGY_ORDER.index(name) if name in STRATEGY_ORDER else len(STRATEGY_ORDER)


def _ordered(names: Iterable[str], order: Sequence[str]) -> list[str]:
    return sorted(names, key=lambda n: (order.index(n) if n in order else len(order), n))


def task_label(spec: dict) -> str:
    """'fashion-mnist' or 'fashion-mnist, classes cars,trucks': the dataset and the classes a run learns."""
    dataset = str(spec.get("dataset"))
    source, target, side = spec.get("source"), spec.get("target"), spec.get("side", "target")
    trains_on = get_strategy(spec.get("strategy")).trains_on
    if trains_on == "one-shot":  # its own task: one-shot accuracy is not a classifier's accuracy
        return _one_shot_label(dataset, source, target, spec.get("source_dataset"))
    if trains_on != "target" and source is None and target is None and not spec.get("swap"):
        return dataset
    named, other = (target, source) if side == "target" else (source, target)
    if named is not None:
        return f"{dataset}, classes {named}"
    if other is not None:
        return f"{dataset}, all classes but {other}"
    return f"{dataset}, random half of the classes ({side} side)"


def _one_shot_label(dataset: str, source: str | None, target: str | None, source_dataset: str | None) -> str:
    """'fashion-mnist, one-shot on classes 3,4,5,6, trained on classes 0,1,2' (or on another dataset)."""
    if source_dataset is not None and source_dataset != dataset:
        tested = f"classes {target}" if target is not None else "all classes"
        trained = source_dataset + (f" classes {source}" if source is not None else "")
    else:
        tested = (
            f"classes {target}"
            if target is not None
            else f"all classes but {source}"
            if source is not None
            else "a random half of the classes"
        )
        trained = f"classes {source}" if source is not None else "the other classes"
    return f"{dataset}, one-shot on {tested}, trained on {trained}"


@dataclass(frozen=True)
class FailedRun:
    run_id: str
    spec: dict
    error: str
    attempts: int


@dataclass
class StudyData:
    """Everything a report needs, read once from ``DIR/study.sqlite``."""

    directory: Path
    name: str
    description: str
    spec_toml: str | None
    counts: dict[str, int]  # pending / running / done / failed, as stored
    tasks: list[Task]
    failed: list[FailedRun]  # failed runs, and done runs whose result is unusable
    n_usable: int  # finished runs with a test accuracy
    history: Callable[[str], list[dict]]  # run_id -> per-epoch history (reads the open store)

    @property
    def n_runs(self) -> int:
        return sum(self.counts.values())


def load_study(store: Store) -> StudyData:
    """Group the store's finished runs into tasks and cells; collect the failed ones with their reasons."""
    usable, failed = [], []
    for run in store.runs():
        result = run["result"] or {}
        if run["status"] == "failed":
            failed.append(
                FailedRun(run["run_id"], run["spec"], run["error"] or "no reason recorded", run["attempts"])
            )
        elif run["status"] == "done":
            if result.get("status", "ok") != "ok":
                failed.append(
                    FailedRun(
                        run["run_id"],
                        run["spec"],
                        result.get("error") or "result marked failed",
                        run["attempts"],
                    )
                )
            elif not _is_accuracy(result.get("test_accuracy")):
                failed.append(
                    FailedRun(run["run_id"], run["spec"], "finished without a test accuracy", run["attempts"])
                )
            else:
                usable.append(run)
    groups: dict[tuple[str, Config, SizeKey], list[dict]] = defaultdict(list)
    for run in usable:
        spec = run["spec"]
        groups[(task_label(spec), Config.of(spec), SizeKey.of(spec))].append(run)
    by_task: dict[str, list[Cell]] = defaultdict(list)
    for (task, config, size), runs in groups.items():
        by_task[task].append(_cell(task, config, size, runs))
    return StudyData(
        directory=store.directory,
        name=store.get_meta("name") or store.directory.name,
        description=store.get_meta("description") or "",
        spec_toml=store.get_meta("spec_toml"),
        counts=store.counts(),
        tasks=[Task(label, cells) for label, cells in sorted(by_task.items())],
        failed=failed,
        n_usable=len(usable),
        history=store.history,
    )


def _is_accuracy(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _split_key(result: dict) -> str:
    """The split a run was measured on: its indices hash and direction (snt's swap); '' parts when absent."""
    spec = result.get("spec") or {}
    return f"{result.get('indices_hash') or ''}:{bool(spec.get('swap'))}"


def _cell(task: str, config: Config, size: SizeKey, runs: list[dict]) -> Cell:
    results = [r["result"] for r in runs]
    with_val = [r for r in results if _is_accuracy(r.get("val_accuracy"))]
    n_train = [r.get("n_train") or 0 for r in results]
    n_classes = Counter(r.get("n_classes") or 0 for r in results).most_common(1)[0][0]
    metric_values: dict[str, list[float]] = defaultdict(list)
    for r in results:
        for name, value in (r.get("metrics") or {}).items():
            if _is_accuracy(value):  # any finite number
                metric_values[name].append(float(value))
    seconds = [float(r["total_seconds"]) for r in results if _is_accuracy(r.get("total_seconds"))]
    # Keys pair arms split by split only when every run names its split (results since release 0.1 do).
    keyed = all(r.get("indices_hash") for r in results)
    return Cell(
        task=task,
        config=config,
        size=size,
        n_train=round(sum(n_train) / len(n_train)),
        n_classes=n_classes,
        test=Stat.of(
            [r["test_accuracy"] for r in results], [_split_key(r) for r in results] if keyed else None
        ),
        val=Stat.of(
            [r["val_accuracy"] for r in with_val], [_split_key(r) for r in with_val] if keyed else None
        )
        if with_val
        else None,
        run_ids=tuple(r["run_id"] for r in runs),
        directions=len({bool(r["spec"].get("swap")) for r in runs}),
        metrics={name: Stat.of(values) for name, values in sorted(metric_values.items())},
        seconds=Stat.of(seconds) if seconds else None,
        run_seconds=tuple(seconds),
        confusion=_summed_confusion([r.get("test_confusion") for r in results]),
    )


def _summed_confusion(records: list) -> dict | None:
    """The repeats' confusion counts summed, or None when one is missing or they differ in classes."""
    if not records or not all(isinstance(r, dict) and r.get("classes") and r.get("counts") for r in records):
        return None
    classes = records[0]["classes"]
    if any(r["classes"] != classes for r in records):
        return None
    try:
        counts = [np.asarray(r["counts"], dtype=np.int64) for r in records]
    except (TypeError, ValueError):
        return None
    if any(c.shape != (len(classes), len(classes)) or (c < 0).any() for c in counts):
        return None
    return {"classes": list(classes), "counts": sum(counts).tolist(), "repeats": len(records)}


# --------------------------------------------------------------------------- frozen-depth sweeps


@dataclass
class DepthSweep:
    """A sweep over how many units are transferred or frozen, at several sizes (one source domain).

    ``panels`` maps a condition ("transferred and frozen", ...) to {(depth, size): cell chosen on
    validation}; ``reference`` maps a size to the reference cell the gains are measured against."""

    task: Task
    title: str
    depth_label: str  # y-axis label of the heatmaps, with the unit
    panels: dict[str, dict[tuple[int, SizeKey], Cell]]
    reference: dict[SizeKey, Cell]
    reference_label: str  # what the reference is, in a sentence
    reference_short: str  # ... in a legend entry
    tuned: list[str]  # fields chosen on validation within each cell
    strategy: str

    @property
    def depths(self) -> list[int]:
        return sorted({d for cells in self.panels.values() for d, _ in cells})

    @property
    def sizes(self) -> list[SizeKey]:
        present = {s for cells in self.panels.values() for _, s in cells}
        return [s for s in self.task.sizes if s in present]

    def gain(self, cell: Cell) -> Gain | None:
        reference = self.reference.get(cell.size)
        return None if reference is None else Gain.between(cell.test, reference.test)


DEPTH_FIELDS = ("transfer", "frozen")  # the sweep's axis


def _sweep_key(cell: Cell) -> tuple:
    """Every (field, value) but the tuning and depth fields: one sweep (figure) per key, so a heatmap cell
    never joins two recipes, layers or resolutions (only the tuning fields are chosen inside a cell)."""
    return tuple((k, v) for k, v in cell.config.items if k not in TUNING_FIELDS and k not in DEPTH_FIELDS)


def depth_sweeps(task: Task) -> list[DepthSweep]:
    """The task's depth sweeps: snt (units transferred; frozen vs fine-tuned panels, reference = its
    transfer=0 base) and finetune (pretrained units frozen; reference = the task's baseline)."""
    sweeps = []
    builders = {"transfer": _snt_sweep, "frozen": _finetune_sweep}  # by the depth a strategy record sweeps
    for strategy in sorted((s for s in list_strategies() if s.sweep), key=lambda s: s.sweep != "transfer"):
        groups: dict[tuple, list[Cell]] = defaultdict(list)
        for cell in task.cells:
            if cell.config.strategy == strategy.name:
                groups[_sweep_key(cell)].append(cell)
        for key, cells in sorted(groups.items(), key=lambda item: repr(item[0])):
            sweep = builders[strategy.sweep](task, key, cells)
            if sweep is not None:
                sweeps.append(sweep)
    return sweeps


def _chosen(cells: Iterable[Cell], key: Callable[[Cell], tuple | None]) -> dict[tuple, Cell]:
    grouped: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in cells:
        k = key(cell)
        if k is not None:
            grouped[k].append(cell)
    chosen = {k: best_by_validation(cs) for k, cs in grouped.items()}
    return {k: c for k, c in chosen.items() if c is not None}


def _sweep_title(task: Task, strategy: str, key: tuple) -> str:
    """'snt · backbone=cifar_cnn · source=cats,dogs': the backbone and source always, the other fields of
    the sweep's key when they tell the strategy's configurations apart."""
    telling = [f for f in task.telling_fields(strategy) if f not in TUNING_FIELDS and f not in DEPTH_FIELDS]
    values = dict(key)
    names = [f for f in ("backbone", "source") if values.get(f) is not None]
    names += [f for f in telling if f not in names and values.get(f) is not None]
    return " · ".join([strategy] + [f"{name}={_short(values[name])}" for name in names])


def _tuned(task: Task, cells: list[Cell], exclude: Sequence[str]) -> list[str]:
    values: dict[str, set] = defaultdict(set)
    for cell in cells:
        for name, value in cell.config.items:
            values[name].add(value)
    return sorted(n for n, v in values.items() if len(v) > 1 and n not in exclude)


def _snt_sweep(task: Task, key: tuple, cells: list[Cell]) -> DepthSweep | None:
    def condition(cell: Cell) -> str | None:
        return {
            "frozen": "transferred and frozen (SnT)",
            "fine-tuned": "transferred and fine-tuned (SnT+)",
        }.get(cell.config.variant)

    base = _chosen((c for c in cells if c.config.variant == "base"), lambda c: (c.size,))
    panels: dict[str, dict[tuple[int, SizeKey], Cell]] = {}
    for name in ("transferred and frozen (SnT)", "transferred and fine-tuned (SnT+)"):
        chosen = _chosen(
            (c for c in cells if condition(c) == name), lambda c: (c.config.get("transfer"), c.size)
        )
        if chosen:
            panels[name] = {(0, size): cell for (size,), cell in base.items()} | chosen
    if not panels or len({d for cells_ in panels.values() for d, _ in cells_}) < 2:
        return None
    reference = {size: cell for (size,), cell in base.items()}
    labels = ("the same network trained from scratch on the target (transfer=0, base)", "base (transfer=0)")
    if not reference:
        reference = _task_baseline(task)
        labels = ("the task's baseline chosen on validation (no snt base runs)", "baseline")
    return DepthSweep(
        task,
        _sweep_title(task, "snt", key),
        "units transferred from the source model",
        panels,
        reference,
        *labels,
        _tuned(task, cells, ("transfer", "frozen")),
        "snt",
    )


def _finetune_sweep(task: Task, key: tuple, cells: list[Cell]) -> DepthSweep | None:
    chosen = _chosen(cells, lambda c: (c.config.get("frozen") or 0, c.size))
    if len({depth for depth, _ in chosen}) < 2:
        return None
    return DepthSweep(
        task,
        _sweep_title(task, "finetune", key),
        "pretrained units frozen (rest fine-tuned)",
        {"pretrained, first units frozen": chosen},
        _task_baseline(task),
        "the task's baseline chosen on validation",
        "baseline",
        _tuned(task, cells, ("frozen",)),
        "finetune",
    )


def _task_baseline(task: Task) -> dict[SizeKey, Cell]:
    chosen = {size: task.best(size, role="baseline") for size in task.sizes}
    return {size: cell for size, cell in chosen.items() if cell is not None}


@dataclass(frozen=True)
class Cost:
    """Wall-clock seconds of one strategy's finished runs in a task: ``per_run`` over the ``n`` timed runs
    (features extracted once and cached are paid by the first run that needs them, so the mean spreads
    that cost over every run sharing them) and their ``total``."""

    strategy: str
    per_run: Stat
    total: float


def strategy_costs(task: Task) -> dict[str, Cost]:
    """Strategy -> its :class:`Cost`, from every finished run's ``total_seconds``."""
    seconds: dict[str, list[float]] = defaultdict(list)
    for cell in task.cells:
        seconds[cell.config.strategy] += list(cell.run_seconds)
    return {s: Cost(s, Stat.of(v), math.fsum(v)) for s in task.strategies() if (v := seconds.get(s))}
