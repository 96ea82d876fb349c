"""The report's learning-curve fits (advise/curves.py) and, when ``transferlab advise --validate`` has
run, the advice validation table.

- figure ``curve_fit_<task>``: per size-curve line with runs at >= 3 sizes, every run's test accuracy
  against labelled images per class (log x), the fitted c - a n^-b and its 95% bootstrap band, the
  dotted extension up to the trusted extrapolation limit;
- table ``learning_curve_fits``: the fitted parameters and labels per class for 90/95/99% test accuracy,
  with interval and the extrapolation verdict;
- table ``advise_validation``: each candidate's scores next to its real test accuracy, with Kendall tau.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

from transferlab.advise.curves import EXTRAPOLATION_LIMIT, CurveFit, fit_curve
from transferlab.errors import TransferlabError
from transferlab.report.aggregate import StudyData, Task
from transferlab.report.tables import Column, Table

TARGETS = (0.9, 0.95, 0.99)


def _fits(task: Task, results: dict[str, dict]) -> list[tuple[str, CurveFit]]:
    """(line label, fit) for every size-curve line with runs at >= 3 sizes."""
    fits = []
    for cells in task.lines().values():
        if len(cells) < 3:
            continue
        n, acc = [], []
        for cell in cells.values():
            for run_id in cell.run_ids:
                result = results.get(run_id) or {}
                if result.get("test_accuracy") is not None and result.get("n_train"):
                    n.append(result["n_train"] / max(cell.n_classes, 1))
                    acc.append(result["test_accuracy"])
        try:
            fits.append(
                (
                    task.describe(next(iter(cells.values())).config, full=False),
                    fit_curve(np.array(n), np.array(acc), task.chance),
                )
            )
        except TransferlabError:
            continue  # fewer than 3 distinct sizes among usable runs, or no convergence: no curve to show
    return fits


def all_fits(study: StudyData, results: dict[str, dict]) -> dict[str, list[tuple[str, CurveFit]]]:
    """task label -> its (line label, fit) pairs; ``results``: run id -> stored result."""
    return {task.label: _fits(task, results) for task in study.tasks}


def figures(study: StudyData, fits_by_task: dict, folder: Path, save: Callable, slug: Callable) -> list:
    """One learning-curve-fit figure per task that has a line with >= 3 sizes."""
    from transferlab.report.figures import _new_figure

    saved = []
    for t, task in enumerate(study.tasks, start=1):
        fits = fits_by_task[task.label]
        if not fits:
            continue
        figure = _new_figure(6.4, 4.2)
        ax = figure.add_subplot()
        for i, (label, fit) in enumerate(fits):
            colour = f"C{i % 10}"
            grid = np.geomspace(fit.n_min, fit.n_max, 100)
            low, high = fit.band(grid)
            ax.fill_between(grid, low, high, color=colour, alpha=0.15, linewidth=0)
            ax.plot(grid, fit.predict(grid), color=colour, label=f"{label}: ceiling {fit.ceiling:.3f}")
            beyond = np.geomspace(fit.n_max, fit.n_max * EXTRAPOLATION_LIMIT, 30)
            ax.plot(beyond, fit.predict(beyond), color=colour, linestyle=":")
        ax.axhline(task.chance, color="black", linestyle=":", linewidth=1.0)
        ax.set_xscale("log")
        ax.set_xlabel("labelled training images per class")
        ax.set_ylabel("test accuracy")
        ax.legend(loc="lower right")
        ax.set_title(f"{task.label}: fitted learning curves")
        saved.append(save(
            figure, folder, f"curve_fit_{t}-{slug(task.label)}", f"{task.label}: learning-curve fits",
            "Fitted accuracy = c - a·n^-b (n: labelled images per class; least squares over every run) with its "
            f"95% bootstrap band ({len(fits[0][1].bootstrap)} refits, runs resampled within each size); dotted: "
            f"the extension up to {EXTRAPOLATION_LIMIT:g}x the largest size, the limit within which labels-needed "
            "answers are trusted. Each line is the configuration chosen on validation at each size. Dotted "
            "black: chance. The table learning_curve_fits gives labels per class for 90/95/99%.",
        ))  # fmt: skip
    return saved


def tables(study: StudyData, fits_by_task: dict) -> list[Table]:
    """``learning_curve_fits`` (when a line has >= 3 sizes) and ``advise_validation`` (when validated)."""
    out = []
    rows = []
    for task in study.tasks:
        for label, fit in fits_by_task[task.label]:
            c, a, b = fit.params
            row = {"task": task.label, "line": label, "ceiling_c": c, "scale_a": a, "exponent_b": b,
                   "residual_std": fit.residual_std, "runs": fit.points, "sizes": fit.sizes,
                   "per_class_min": fit.n_min, "per_class_max": fit.n_max}  # fmt: skip
            for target in TARGETS:
                row[f"labels_for_{round(100 * target)}"] = fit.labels_needed(target).message
            rows.append(row)
    if rows:
        out.append(Table("learning_curve_fits", "Learning-curve fits accuracy = c - a n^-b per configuration line, and "
                         "labelled images per class needed for 90/95/99% test accuracy (95% bootstrap interval).", rows,
                         [Column("task", lambda r: r["task"]), Column("line", lambda r: r["line"]),
                          Column("ceiling c", lambda r: f"{r['ceiling_c']:.3f}"),
                          Column("b", lambda r: f"{r['exponent_b']:.2f}"),
                          Column("measured per class", lambda r: f"{r['per_class_min']:g}-{r['per_class_max']:g}"),
                          *(Column(f"for {round(100 * t)}%", lambda r, t=t: r[f"labels_for_{round(100 * t)}"]) for t in TARGETS)]))  # fmt: skip
    path = study.directory / "advise_validation.json"
    if path.is_file():
        validation = json.loads(path.read_text())
        vrows = []
        for task in validation["tasks"]:
            for r in task["rows"]:
                vrows.append({"task": task["task"], "size": task["size"], **r,
                              **{f"tau_{k}": v for k, v in task["kendall_tau"].items()}})  # fmt: skip

        def num(key: str, digits: int = 3) -> Callable[[dict], str]:
            return lambda r: (
                "n/a"
                if r.get(key) is None or (isinstance(r[key], float) and math.isnan(r[key]))
                else f"{r[key]:.{digits}f}"
            )

        out.append(Table("advise_validation", "transferlab advise --validate: transferability scores of each "
                         "candidate on the training subset vs its real test accuracy (configuration chosen on "
                         "validation; mean ± std over n repeats). Kendall tau: rank agreement of each score with the "
                         "accuracy (1 = same order).", vrows,
                         [Column("candidate", lambda r: r["candidate"]), Column("size", lambda r: r["size"]),
                          Column("LogME", num("logme")), Column("LEEP", num("leep")), Column("NCE", num("nce")),
                          Column("H-score", num("h_score", 2)), Column("kNN", num("knn")),
                          Column("test accuracy", lambda r: f"{r['accuracy_mean']:.3f} ± {num('accuracy_std')(r)} (n={r['n']})"),
                          Column("tau LogME", num("tau_logme", 2)), Column("tau LEEP", num("tau_leep", 2))]))  # fmt: skip
    return out
