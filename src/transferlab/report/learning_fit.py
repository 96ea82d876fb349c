"""The report's learning-curve fits (advise/curves.py) and, when ``transferlab advise --validate`` has
run, the advice validation table.

- figure ``curve_fit_<task>``: per size-curve line with runs at >= 3 sizes (in that line's colour and
  style), every run's test accuracy against labelled images per class (log x), the fitted c - a n^-b and
  its 95% bootstrap band, the dotted extension up to the trusted extrapolation limit and nothing beyond;
- table ``learning_curve_fits``: the fitted parameters and labels per class for 90/95/99% test accuracy
  with interval, given only within the trusted range ("not estimated" beyond it); a ceiling that sits on
  the fit's bound (1 or chance) is "not determined", not a finding;
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


Fit = tuple[tuple, str, CurveFit, np.ndarray, np.ndarray]  # line key, label, fit, per-class sizes, accuracies


def _fits(task: Task, results: dict[str, dict]) -> list[Fit]:
    """(line key, line label, fit, runs' images per class, runs' test accuracy) for every size-curve line
    with runs at >= 3 sizes."""
    fits = []
    for key, cells in task.lines().items():
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
            fit = fit_curve(np.array(n), np.array(acc), task.chance)
        except TransferlabError:
            continue  # fewer than 3 distinct sizes among usable runs, or no convergence: no curve to show
        label = task.describe(next(iter(cells.values())).config, full=False)
        fits.append((key, label, fit, np.array(n), np.array(acc)))
    return fits


def all_fits(study: StudyData, results: dict[str, dict]) -> dict[str, list[Fit]]:
    """task label -> its fits (see :func:`_fits`); ``results``: run id -> stored result."""
    return {task.label: _fits(task, results) for task in study.tasks}


BOUND_TOLERANCE = 1e-6


def ceiling_at_bound(fit: CurveFit, chance: float) -> bool:
    """True when the fitted ceiling sits on a bound of the fit (1 or chance): the data do not pin it, so it
    is no finding (a curve still rising at the largest size fits any ceiling up to 1)."""
    return abs(fit.ceiling - 1.0) < BOUND_TOLERANCE or abs(fit.ceiling - chance) < BOUND_TOLERANCE


def ceiling_text(fit: CurveFit, chance: float) -> str:
    if ceiling_at_bound(fit, chance):
        return f"not determined (the fit stopped at its bound {fit.ceiling:.3f})"
    return f"{fit.ceiling:.3f}"


def labels_text(fit: CurveFit, target: float) -> str:
    """The labels needed for ``target``, or why no number is given: above the ceiling, or beyond the range
    in which a power law fitted to these sizes is trusted (EXTRAPOLATION_LIMIT x the measured sizes)."""
    answer = fit.labels_needed(target)
    if math.isinf(answer.estimate):
        return f"not reached: above the fitted ceiling {100 * fit.ceiling:.1f}%"
    if answer.extrapolation > EXTRAPOLATION_LIMIT:
        return (
            f"not estimated: beyond the reliable range ({fit.n_min:g}-{EXTRAPOLATION_LIMIT * fit.n_max:g} per "
            f"class, up to {EXTRAPOLATION_LIMIT:g}x the largest size measured)"
        )
    return answer.message


def figures(study: StudyData, fits_by_task: dict, folder: Path, save: Callable, slug: Callable) -> list:
    """One learning-curve-fit figure per task that has a line with >= 3 sizes: each line in its size-curve
    style, its runs as points, the fit with its band up to the largest size, dotted up to the reliable
    limit and not beyond."""
    from matplotlib.ticker import FixedLocator, NullLocator

    from transferlab.report.figures import CHANCE_STYLE, _data_limits, _new_figure, line_styles

    saved = []
    for t, task in enumerate(study.tasks, start=1):
        fits = fits_by_task[task.label]
        if not fits:
            continue
        styles = line_styles(task)
        figure = _new_figure(8.0, 5.2)
        ax = figure.add_subplot()
        values, sizes, undetermined = [], set(), []
        for key, label, fit, n, acc in fits:
            colour, linestyle, marker = styles[key]
            grid = np.geomspace(fit.n_min, fit.n_max, 100)
            low, high = fit.band(grid)
            beyond = np.geomspace(fit.n_max, fit.n_max * EXTRAPOLATION_LIMIT, 30)
            ax.fill_between(grid, low, high, color=colour, alpha=0.15, linewidth=0)
            at_bound = ceiling_at_bound(fit, task.chance)
            if at_bound:
                undetermined.append(label)
            ceiling = "ceiling not determined" if at_bound else f"ceiling {fit.ceiling:.3f}"
            ax.plot(
                grid,
                fit.predict(grid),
                color=colour,
                linestyle=linestyle,
                linewidth=1.6,
                label=f"{label}: {ceiling}",
            )
            ax.plot(beyond, fit.predict(beyond), color=colour, linestyle=":", linewidth=1.4)
            ax.scatter(n, acc, color=colour, marker=marker, s=16, alpha=0.7, linewidths=0, zorder=3)
            values += [*acc, *low, *high, *fit.predict(beyond)]
            sizes |= set(np.unique(n).tolist())
        low, high = _data_limits(values)
        if low <= task.chance <= high:
            ax.axhline(task.chance, **CHANCE_STYLE)
        ax.set_ylim(low, high)
        ax.set_xscale("log")
        ticks = sorted(sizes) + [EXTRAPOLATION_LIMIT * max(sizes)]
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{v:g}" for v in ticks])  # plain numbers: math text is off for user strings
        ax.set_xlim(min(sizes) / 1.3, ticks[-1] * 1.3)
        ax.axvline(max(sizes), color="#999999", linewidth=0.8, linestyle="--")
        ax.set_xlabel("labelled training images per class (log scale); dashed: the largest size measured")
        ax.set_ylabel("test accuracy (fraction; axis zoomed to the data)")
        ax.grid(True, alpha=0.3)
        note = (
            "; ceiling not determined: the fit stopped at its bound, the data do not pin it"
            if undetermined
            else ""
        )
        ax.set_title(
            f"{task.label}: fitted learning curves\npoints: every run; band: 95% bootstrap interval; "
            f"dotted: extrapolation up to {EXTRAPOLATION_LIMIT:g}x the largest size, no further{note}",
            fontsize=9,
            wrap=True,
        )
        figure.legend(loc="outside lower center", ncols=1, frameon=False)
        saved.append(
            save(
                figure,
                folder,
                f"curve_fit_{t}-{slug(task.label)}",
                f"{task.label}: learning-curve fits",
                "Fitted accuracy = c - a·n^-b (n: labelled images per class; least squares over every run, the "
                f"points) with its 95% bootstrap band ({len(fits[0][2].bootstrap)} refits, runs resampled within "
                "each size); lines in the colours and styles of the accuracy-vs-size figure. Dotted: the "
                f"extension up to {EXTRAPOLATION_LIMIT:g}x the largest size measured. Nothing is drawn or answered "
                "beyond it: a power law fitted over a narrow range of sizes says little far outside it (the ceiling, "
                "which dominates at large n, is poorly pinned by small-n points). A ceiling at the fit's bound (1 or "
                "chance) is reported as not determined. Each line is the configuration chosen on validation at each "
                "size. The table learning_curve_fits gives labels per class for 90/95/99% where they fall inside "
                "the reliable range.",
            )
        )
    return saved


def tables(study: StudyData, fits_by_task: dict) -> list[Table]:
    """``learning_curve_fits`` (when a line has >= 3 sizes) and ``advise_validation`` (when validated)."""
    out = []
    rows = []
    for task in study.tasks:
        for _, label, fit, _, _ in fits_by_task[task.label]:
            c, a, b = fit.params
            row = {
                "task": task.label,
                "line": label,
                "ceiling_c": c,
                "scale_a": a,
                "exponent_b": b,
                "residual_std": fit.residual_std,
                "runs": fit.points,
                "sizes": fit.sizes,
                "per_class_min": fit.n_min,
                "per_class_max": fit.n_max,
            }
            for target in TARGETS:
                row[f"labels_for_{round(100 * target)}"] = labels_text(fit, target)
            row["ceiling_determined"] = not ceiling_at_bound(fit, task.chance)
            row["ceiling_text"] = ceiling_text(fit, task.chance)
            rows.append(row)
    if rows:
        out.append(
            Table(
                "learning_curve_fits",
                "Learning-curve fits accuracy = c - a n^-b per configuration line, and "
                "labelled images per class needed for 90/95/99% test accuracy (95% bootstrap interval), "
                f"given only within the reliable range: up to {EXTRAPOLATION_LIMIT:g}x the largest size "
                "measured (a power law says little further out). A ceiling at the fit's bound is not "
                "determined by the data.",
                rows,
                [
                    Column("task", lambda r: r["task"]),
                    Column("line", lambda r: r["line"]),
                    Column("ceiling c", lambda r: r["ceiling_text"]),
                    Column("b", lambda r: f"{r['exponent_b']:.2f}"),
                    Column("measured per class", lambda r: f"{r['per_class_min']:g}-{r['per_class_max']:g}"),
                    *(
                        Column(f"for {round(100 * t)}%", lambda r, t=t: r[f"labels_for_{round(100 * t)}"])
                        for t in TARGETS
                    ),
                ],
            )
        )
    path = study.directory / "advise_validation.json"
    if path.is_file():
        validation = json.loads(path.read_text())
        vrows = []
        for task in validation["tasks"]:
            for r in task["rows"]:
                vrows.append(
                    {
                        "task": task["task"],
                        "size": task["size"],
                        **r,
                        **{f"tau_{k}": v for k, v in task["kendall_tau"].items()},
                    }
                )

        def num(key: str, digits: int = 3) -> Callable[[dict], str]:
            return lambda r: (
                "n/a"
                if r.get(key) is None or (isinstance(r[key], float) and math.isnan(r[key]))
                else f"{r[key]:.{digits}f}"
            )

        out.append(
            Table(
                "advise_validation",
                "transferlab advise --validate: transferability scores of each "
                "candidate on the training subset vs its real test accuracy (configuration chosen on "
                "validation; mean ± std over n repeats). Kendall tau: rank agreement of each score with the "
                "accuracy (1 = same order).",
                vrows,
                [
                    Column("candidate", lambda r: r["candidate"]),
                    Column("size", lambda r: r["size"]),
                    Column("LogME", num("logme")),
                    Column("LEEP", num("leep")),
                    Column("NCE", num("nce")),
                    Column("H-score", num("h_score", 2)),
                    Column("kNN", num("knn")),
                    Column(
                        "test accuracy",
                        lambda r: f"{r['accuracy_mean']:.3f} ± {num('accuracy_std')(r)} (n={r['n']})",
                    ),
                    Column("tau LogME", num("tau_logme", 2)),
                    Column("tau LEEP", num("tau_leep", 2)),
                ],
            )
        )
    return out
