"""Reports: the evidence a user reads, written from a study's store into ``DIR/report/``.

:func:`write_report` writes, for any store content (finished, half-finished, only failed, empty):

- ``report.html``: one self-contained page (figures embedded) that answers first — per task and size, the
  best transfer configuration against the best from scratch and with augmentation, the gain with its 95%
  CI in plain words and a recommendation (:mod:`transferlab.report.headline`), and the gain-vs-size
  figure — then the summary in words, the figures, the tables, the cost per strategy, the command that
  reproduces the study with the recorded environment, every run, the run counts, the failed runs with
  their reasons and the study spec;
- each figure as PNG and PDF: gain vs training size, accuracy vs training size (one line per
  configuration: only tuning fields are chosen inside a line), frozen-depth x size heatmaps of accuracy
  and gain with their line-plot twins, learning curves at the smallest sizes, learning-curve fits, one-shot
  accuracy vs N and training pairs (studies with siamese runs);
- the tables as CSV and LaTeX (``best_configs``, ``accuracy_by_role``, ``gains``, ``cost``,
  ``learning_curve_fits``; ``aggregates`` as CSV), ``runs.csv`` (the long table) and ``summary.md``.

Configurations are chosen on validation accuracy and reported with test accuracy (see
:mod:`transferlab.report.aggregate`), each with the number of configurations it was chosen from. The
folder is replaced as a whole, so it never mixes two reports.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path

import matplotlib
from matplotlib.figure import Figure

from transferlab import faults, paths
from transferlab.errors import TransferlabError
from transferlab.report import few_shot, headline, learning_fit, provenance
from transferlab.report import figures as figs
from transferlab.report.aggregate import SizeKey, StudyData, depth_sweeps, load_study
from transferlab.report.html import FigureFile, render
from transferlab.report.summary import summarize, to_markdown
from transferlab.report.tables import all_tables
from transferlab.study.export import long_table, open_study, write_csv

REPORT_FOLDER = "report"
PNG_DPI = 130


def write_report(study_dir: str | os.PathLike) -> Path:
    """Write ``DIR/report/`` for the study in ``study_dir`` and return the path of ``report.html``.

    Raises TransferlabError when ``study_dir`` does not exist or holds no study (``study.sqlite``)."""
    from transferlab import __version__

    # One report writer at a time (two `transferlab study` processes on one directory both end with a
    # report): each reads the store under the lock, so the last one written holds every recorded run.
    with open_study(study_dir) as store, paths.exclusive(store.directory / ".lock-report"):
        study = load_study(store)
        folder = study.directory / REPORT_FOLDER
        for stale in study.directory.glob(
            f".{REPORT_FOLDER}-*"
        ):  # left by a killed writer (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{REPORT_FOLDER}-", dir=study.directory))
        try:
            runs = store.runs()
            fits = learning_fit.all_fits(
                study, {run["run_id"]: run["result"] or {} for run in runs if run["status"] == "done"}
            )
            with matplotlib.rc_context(figs.RC):
                figures = _draw_figures(study, staging)
                figures += learning_fit.figures(study, fits, staging, _save, _slug)
            extra_tables = [
                *learning_fit.tables(study, fits),
                provenance.cost_table(study, runs),
                *few_shot.tables([run for run in runs if run["status"] == "done"]),
            ]
            tables = [table for table in [*all_tables(study), *extra_tables] if table.rows]
            for table in tables:
                table.write_csv(staging / f"{table.name}.csv")
                if table.display:
                    (staging / f"{table.name}.tex").write_text(table.latex(), encoding="utf-8")
            write_csv(*long_table(store), staging / "runs.csv")
            tables.append(
                provenance.all_runs_table(study, runs)
            )  # on the page only: runs.csv has every field
            summary = summarize(study)
            how = provenance.provenance(study, runs)
            commands = "\n".join(how.commands)
            (staging / "summary.md").write_text(
                f"# {study.name}\n\n{to_markdown(summary)}\n## Reproduce\n\n```\n{commands}\n```\n",
                encoding="utf-8",
            )
            page = render(study, summary, figures, tables, __version__, how)
            (staging / "report.html").write_text(page, encoding="utf-8")
            _replace_folder(staging, folder)
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if isinstance(exc, OSError):  # disk full, a file size limit: the previous report stays as it was
                raise TransferlabError(f"cannot write the report into {folder}: {exc}") from None
            raise
    return folder / "report.html"


def _replace_folder(staging: Path, folder: Path) -> None:
    """Put ``staging`` where ``folder`` is: the old report is moved aside first, then deleted."""
    old = None
    if folder.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{REPORT_FOLDER}-old-", dir=folder.parent))
        os.replace(folder, old / REPORT_FOLDER)
    os.replace(staging, folder)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:48]


def _save(figure: Figure, folder: Path, stem: str, title: str, caption: str) -> FigureFile:
    png = folder / f"{stem}.png"
    figure.savefig(png, dpi=PNG_DPI)
    faults.checkpoint("report-figure")
    figure.savefig(folder / f"{stem}.pdf")
    return FigureFile(stem, title, caption, png)


def _tuned_text(fields: list[str]) -> str:
    return (
        f"the configuration chosen on validation among {', '.join(fields)}" if fields else "its configuration"
    )


def _confusion_figure(task) -> tuple[Figure, SizeKey] | None:
    """The confusion matrices of the answer's arms at the task's smallest size with a transfer choice."""
    for answer in headline.answers(task):
        if answer.transfer is None:
            continue
        panels = [(f"transfer: {task.describe(answer.transfer.cell.config)}", answer.transfer.cell)]
        for role, choice in answer.references.items():
            panels.append(
                (
                    f"{headline.REFERENCE_NAMES.get(role, role)}: {task.describe(choice.cell.config)}",
                    choice.cell,
                )
            )
        figure = figs.confusion_matrices(panels)
        return None if figure is None else (figure, answer.size)
    return None


def _draw_figures(study: StudyData, folder: Path) -> list[FigureFile]:
    saved = []
    for t, task in enumerate(study.tasks, start=1):
        prefix = f"{t}-{_slug(task.label)}"
        gain = figs.gain_curves(task)
        if gain is not None:
            saved.append(
                _save(
                    gain,
                    folder,
                    f"gain_curves_{prefix}",
                    f"{task.label}: gain of transfer vs training size",
                    "Test accuracy of the best transfer configuration minus that of the best configuration trained "
                    "from scratch (and minus the best with augmentation), each chosen on validation at each size, in "
                    "percentage points; band: 95% interval of the difference (paired over the splits both arms share, Welch's otherwise); filled markers: the interval "
                    "excludes 0 (a detectable difference); hollow: it covers 0 (no detectable difference). Solid "
                    "black: 0, no difference.",
                )
            )
        confusion = _confusion_figure(task)
        if confusion is not None:
            figure, size = confusion
            saved.append(
                _save(
                    figure,
                    folder,
                    f"confusion_{prefix}",
                    f"{task.label}: confusion matrices at {size.label}",
                    f"Test confusion matrices at the smallest size ({size.label}) of the transfer configuration "
                    "and the baselines chosen on validation (the answer's arms), summed over their repeats; "
                    "each row is a true class, normalised to 100 % of its test images, so the diagonal is each "
                    "class's recall. Classes that transfer confuses less (or more) than training from scratch "
                    "show where the pretrained features help.",
                )
            )
        saved.append(
            _save(
                figs.size_curves(task),
                folder,
                f"size_curves_{prefix}",
                f"{task.label}: accuracy vs training size",
                f"Test accuracy (line: mean; band: 95% t-interval over repeats; n runs in the legend) against the "
                f"number of training images on a log axis, the accuracy axis zoomed to the data. One line per "
                f"{', '.join(task.line_fields())} (every other field that varies, except the tuning fields, also "
                f"separates lines, so a line never joins two configurations); at each size it shows "
                f"{_tuned_text(task.tuned_fields())}. Dotted: chance level, 1/{task.n_classes}, when inside the axis.",
            )
        )
        for s, sweep in enumerate(depth_sweeps(task), start=1):
            stem = f"{prefix}-{s}-{_slug(sweep.title)}"
            cell_text = (
                f"Each cell is {_tuned_text(sweep.tuned)}, reported with test accuracy (mean over "
                f"repeats). Gains are measured against {sweep.reference_label} at the same size."
            )
            saved.append(
                _save(
                    figs.depth_heatmaps(sweep),
                    folder,
                    f"depth_heatmaps_{stem}",
                    f"{task.label}: {sweep.title}, depth x size",
                    f"Rows: {sweep.depth_label}; columns: training size. Left: test accuracy; right: gain over the "
                    f"reference (colour and first number: accuracy points; second: % of the reference). {cell_text}",
                )
            )
            saved.append(
                _save(
                    figs.depth_lines(sweep),
                    folder,
                    f"depth_lines_{stem}",
                    f"{task.label}: {sweep.title}, accuracy by depth",
                    f"The heatmaps' data as lines, one panel per training size: test accuracy (error bars: 95% "
                    f"t-interval) against {sweep.depth_label}; dashed with grey band: the reference. {cell_text}",
                )
            )
        curves = figs.learning_curves(task, study.history)
        if curves is not None:
            saved.append(
                _save(
                    curves,
                    folder,
                    f"learning_curves_{prefix}",
                    f"{task.label}: learning curves at the smallest sizes",
                    "Validation error (solid) and training error (dashed) per epoch, mean over the runs of the "
                    "baseline, augmentation and transfer configurations chosen on validation at the "
                    f"{figs.LEARNING_CURVE_SIZES} smallest sizes; the star marks the lowest validation error.",
                )
            )
        one_shot = figs.one_shot_curves(task)
        if one_shot is not None:
            saved.append(
                _save(
                    one_shot,
                    folder,
                    f"one_shot_{prefix}",
                    f"{task.label}: one-shot accuracy vs N and training pairs",
                    "Siamese N-way one-shot test accuracy (fraction of tasks answered right) against N (left) and "
                    "against the number of training pairs (right, one line per N); each point is the configuration "
                    "chosen on the validation pairs' accuracy. Grey: Koch's 1-nearest-neighbour baselines on the same "
                    "tasks (raw pixels; the backbone's features); dotted: chance, 1/N.",
                )
            )
    return saved


__all__ = ["write_report"]
