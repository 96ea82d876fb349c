"""The report's tables, each written as CSV (raw numbers, full precision) and LaTeX / HTML (rounded).

- ``best_configs`` (the VGG16 study's Table 3): per task, size and strategy, the configuration with the
  best mean validation accuracy, reported with its test accuracy and how many configurations it was
  chosen from (``n_configs``, and the ``tuned`` fields with their values).
- ``accuracy_by_role`` (its Table 4): the baseline, augmentation and transfer configurations chosen on
  validation at each size, with validation and test accuracy.
- ``gains`` (its Table 5): relative gain (ratio) and absolute gain (difference) of transfer over the
  baseline and over augmentation, on test accuracy (and on validation accuracy in the CSV, as the study
  reported), with the 95% interval of the absolute gain (paired over shared splits, else Welch's; the CSV's ``*_ci_method``) and each side's ``n_configs``.
- ``aggregates`` (CSV only): every configuration at every size.

Accuracies are fractions in [0, 1]; absolute gains are differences of fractions; relative gains are ratios.
"""

from __future__ import annotations

import csv
import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transferlab.report.aggregate import ROLES, Cell, Choice, Gain, Stat, StudyData, Task


@dataclass(frozen=True)
class Column:
    """A displayed column: its header and how a row renders into it (LaTeX and HTML share both)."""

    header: str
    render: Callable[[dict], str]


@dataclass
class Table:
    name: str  # file stem
    caption: str
    rows: list[dict]  # raw values; the CSV columns, in order
    display: list[Column]  # the LaTeX / HTML columns; empty = CSV only

    def write_csv(self, path: Path) -> None:
        columns = _columns(self.rows)
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: _csv_value(row.get(k)) for k in columns})

    def latex(self) -> str:
        """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
        spec = "l" * 2 + "r" * (len(self.display) - 2) if len(self.display) > 2 else "l" * len(self.display)
        lines = [
            "\\begin{table}[ht]",
            "\\centering",
            "\\small",
            f"\\begin{{tabular}}{{{spec}}}",
            "\\toprule",
            " & ".join(_latex_escape(c.header) for c in self.display) + " \\\\",
            "\\midrule",
        ]
        for row in self.rows:
            lines.append(" & ".join(_latex_escape(c.render(row)) for c in self.display) + " \\\\")
        lines += [
            "\\bottomrule",
            "\\end{tabular}",
            f"\\caption{{{_latex_escape(self.caption)}}}",
            f"\\label{{tab:{self.name.replace('_', '-')}}}",
            "\\end{table}",
            "",
        ]
        return "\n".join(lines)

    def html(self) -> str:
        head = "".join(f"<th>{html.escape(c.header)}</th>" for c in self.display)
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(c.render(row))}</td>" for c in self.display) + "</tr>"
            for row in self.rows
        )
        caption = f"<caption>{html.escape(self.caption)}</caption>"
        return f'<table class="data">{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _columns(rows: list[dict]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        seen.update(dict.fromkeys(row))
    return list(seen)


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return value


_LATEX_SPECIAL = {
    "\\": "\\textbackslash{}",
    "&": "\\&",
    "%": "\\%",
    "$": "\\$",
    "#": "\\#",
    "_": "\\_",
    "{": "\\{",
    "}": "\\}",
    "~": "\\textasciitilde{}",
    "^": "\\textasciicircum{}",
    "±": "$\\pm$",
    "×": "$\\times$",
    "∈": "$\\in$",
    "·": "$\\cdot$",
    "→": "$\\to$",
}


def _latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


# ----------------------------------------------------------------------------------- formatting


def _num(value: float | None, digits: int = 3, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _mean_std(row: dict, prefix: str) -> str:
    mean, std, n = row.get(f"{prefix}_mean"), row.get(f"{prefix}_std"), row.get(f"{prefix}_n")
    if mean is None:
        return "–"
    return f"{mean:.3f}" + ("" if std is None else f" ± {std:.3f}") + f" (n={n})"


def _stat_fields(prefix: str, stat: Stat | None) -> dict[str, Any]:
    if stat is None:
        return {
            f"{prefix}_mean": None,
            f"{prefix}_std": None,
            f"{prefix}_n": 0,
            f"{prefix}_ci_low": None,
            f"{prefix}_ci_high": None,
        }
    return {
        f"{prefix}_mean": stat.mean,
        f"{prefix}_std": stat.std,
        f"{prefix}_n": stat.n,
        f"{prefix}_ci_low": stat.ci_low,
        f"{prefix}_ci_high": stat.ci_high,
    }


def _budget_fields(prefix: str, choice: Choice | None) -> dict[str, Any]:
    """``n_configs`` (configurations the choice was made from) and ``tuned`` (what varied among them)."""
    if choice is None:
        return {f"{prefix}n_configs": 0, f"{prefix}tuned": None}
    return {f"{prefix}n_configs": choice.n_configs, f"{prefix}tuned": choice.tuned_text()}


def _budget(row: dict, prefix: str) -> str:
    """'3: lr ∈ {0.001, 0.01, 0.1}' or '1'."""
    tuned = row.get(f"{prefix}tuned")
    return f"{row[f'{prefix}n_configs']}" + (f": {tuned}" if tuned else "")


def _size_fields(task: Task, cell: Cell) -> dict[str, Any]:
    return {"task": task.label, "n_classes": cell.n_classes, "size": cell.size.label, "n_train": cell.n_train}


# --------------------------------------------------------------------------------------- tables


def best_configs(study: StudyData) -> Table:
    """Table 3: per task, size and strategy, the configuration chosen on validation (test reported)."""
    rows = []
    for task in study.tasks:
        for size in task.sizes:
            overall = task.best(size)
            for strategy in task.strategies():
                choice = task.choice(size, strategy=strategy)
                if choice is None:
                    continue
                cell = choice.cell
                rows.append(
                    {
                        **_size_fields(task, cell),
                        "strategy": strategy,
                        "role": cell.config.role,
                        "configuration": task.describe(cell.config),
                        "best_at_size": cell is overall,
                        **_budget_fields("", choice),
                        **_stat_fields("val", cell.val),
                        **_stat_fields("test", cell.test),
                        "directions": cell.directions,
                        "run_ids": " ".join(cell.run_ids),
                    }
                )
    display = [
        Column("Task", lambda r: r["task"]),
        Column("Size", lambda r: f"{r['size']} ({r['n_train']:,})"),
        Column("Configuration", lambda r: r["configuration"] + (" ★" if r["best_at_size"] else "")),
        Column("Chosen from", lambda r: _budget(r, "")),
        Column("Val. acc.", lambda r: _num(r["val_mean"])),
        Column("Test acc.", lambda r: _mean_std(r, "test")),
    ]
    caption = (
        "Best configuration per task, training size and strategy, chosen on mean validation accuracy "
        "and reported with test accuracy (mean ± std over repeats, n runs); ★ = best at that size. "
        "Chosen from: how many configurations competed on validation, and the settings that varied "
        "among them (a strategy tuned over more configurations had more chances)."
    )
    return Table("best_configs", caption, rows, display)


def _role_rows(study: StudyData) -> list[dict]:
    rows = []
    for task in study.tasks:
        for size in task.sizes:
            choices = {role: task.choice(size, role=role) for role in ROLES}
            chosen = {role: None if choice is None else choice.cell for role, choice in choices.items()}
            if all(c is None for c in chosen.values()):
                continue
            any_cell = next(c for c in chosen.values() if c is not None)
            row = _size_fields(task, any_cell)
            for role, cell in chosen.items():
                row[f"{role}_configuration"] = None if cell is None else task.describe(cell.config)
                row.update(_budget_fields(f"{role}_", choices[role]))
                row.update(_stat_fields(f"{role}_val", None if cell is None else cell.val))
                row.update(_stat_fields(f"{role}_test", None if cell is None else cell.test))
            transfer = chosen["transfer"]
            for reference in ("baseline", "augmentation"):
                ref = chosen[reference]
                test_gain = Gain.between(transfer.test, ref.test) if transfer and ref else None
                val_gain = (
                    Gain.between(transfer.val, ref.val)
                    if transfer and ref and transfer.val and ref.val
                    else None
                )
                row[f"rg_vs_{reference}"] = None if test_gain is None else test_gain.relative
                row[f"ag_vs_{reference}"] = None if test_gain is None else test_gain.absolute
                row[f"ag_vs_{reference}_ci_half"] = None if test_gain is None else test_gain.ci_half
                row[f"ag_vs_{reference}_ci_method"] = (
                    None if test_gain is None or test_gain.ci_half is None else test_gain.method
                )
                row[f"rg_vs_{reference}_val"] = None if val_gain is None else val_gain.relative
                row[f"ag_vs_{reference}_val"] = None if val_gain is None else val_gain.absolute
            rows.append(row)
    return rows


def accuracy_by_role(study: StudyData, rows: list[dict] | None = None) -> Table:
    """Table 4: baseline, augmentation and transfer chosen on validation at each size."""
    rows = _role_rows(study) if rows is None else rows
    display = [
        Column("Task", lambda r: r["task"]),
        Column("Size", lambda r: f"{r['size']} ({r['n_train']:,})"),
    ]
    for role, header in (
        ("baseline", "Baseline"),
        ("augmentation", "Augmentation"),
        ("transfer", "Transfer"),
    ):
        display.append(Column(f"{header} val.", lambda r, p=f"{role}_val_mean": _num(r[p])))
        display.append(Column(f"{header} test", lambda r, p=f"{role}_test": _mean_std(r, p)))
    caption = (
        "Validation and test accuracy of the baseline, augmentation and transfer configurations, each "
        "chosen on validation accuracy at that size (test: mean ± std, n runs; – = no finished runs). "
        "The chosen configurations are in accuracy_by_role.csv."
    )
    return Table("accuracy_by_role", caption, rows, display)


def gains(study: StudyData, rows: list[dict] | None = None) -> Table:
    """Table 5: relative (ratio) and absolute (difference) gain of transfer on test accuracy."""
    rows = _role_rows(study) if rows is None else rows

    def absolute(key: str) -> Callable[[dict], str]:
        def render(r: dict) -> str:
            half = r.get(f"{key}_ci_half")
            return _num(r[key], signed=True) + ("" if half is None else f" ± {half:.3f}")

        return render

    display = [
        Column("Task", lambda r: r["task"]),
        Column("Size", lambda r: f"{r['size']} ({r['n_train']:,})"),
        Column("Transfer configuration", lambda r: r["transfer_configuration"] or "–"),
        Column("Gain vs baseline (± 95% CI)", absolute("ag_vs_baseline")),
        Column("Gain vs augmentation (± 95% CI)", absolute("ag_vs_augmentation")),
        Column("Ratio vs baseline", lambda r: _num(r["rg_vs_baseline"], 2)),
        Column("Ratio vs augmentation", lambda r: _num(r["rg_vs_augmentation"], 2)),
        Column(
            "Configs T / B / A",
            lambda r: " / ".join(
                str(r[f"{role}_n_configs"] or "–") for role in ("transfer", "baseline", "augmentation")
            ),
        ),
    ]
    caption = (
        "Gain of transfer learning over the baseline and over data augmentation on test accuracy, each "
        "configuration chosen on validation. Gain: difference of mean accuracies (fractions; +0.031 = "
        "3.1 percentage points) ± half-width of its 95% interval (paired over the splits both arms share, Welch's otherwise); ratio: transfer's mean accuracy "
        "divided by the reference's (×1.05 = 5% more). In the CSV, ag_* are the gains and rg_* the "
        "ratios. Configs T / B / A: how many "
        "configurations transfer, the baseline and augmentation were each chosen from (unequal numbers "
        "are unequal tuning budgets). The CSV also has the gains on validation accuracy and what was "
        "tuned."
    )
    return Table("gains", caption, rows, display)


def aggregates(study: StudyData) -> Table:
    """Every configuration at every size (CSV only)."""
    rows = []
    for task in study.tasks:
        for cell in sorted(task.cells, key=lambda c: (task.sizes.index(c.size), repr(c.config.items))):
            rows.append(
                {
                    **_size_fields(task, cell),
                    "role": cell.config.role,
                    "strategy": cell.config.strategy,
                    "variant": cell.config.variant,
                    "configuration": task.describe(cell.config),
                    **dict(cell.config.items),
                    **_stat_fields("val", cell.val),
                    **_stat_fields("test", cell.test),
                    "directions": cell.directions,
                    "run_ids": " ".join(cell.run_ids),
                }
            )
    return Table("aggregates", "Every configuration at every size, over its repeats.", rows, [])


def all_tables(study: StudyData) -> list[Table]:
    role_rows = _role_rows(study)
    return [
        best_configs(study),
        accuracy_by_role(study, role_rows),
        gains(study, role_rows),
        aggregates(study),
    ]
