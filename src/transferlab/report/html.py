"""report.html: one self-contained page (figures embedded as base64 PNG, no external resources) with the
run counts, the summary, the figures, the tables, the failed runs with their reasons and the study spec."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from transferlab.report import headline
from transferlab.report.aggregate import ROLE_HELP, StudyData
from transferlab.report.provenance import RUN_ROWS_SHOWN, Provenance
from transferlab.report.summary import ANSWER, Section
from transferlab.report.tables import Table

FAILED_ROWS_SHOWN = 300  # the rest are in runs.csv


@dataclass(frozen=True)
class FigureFile:
    """A saved figure: ``stem``.png and ``stem``.pdf in the report folder."""

    stem: str
    title: str
    caption: str
    png: Path


_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto; max-width: 1200px;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
nav a { margin-right: 1em; }
.meta { color: #666; font-size: 0.9em; }
table.data { border-collapse: collapse; margin: 1em 0; font-size: 0.85em; }
table.data caption { caption-side: bottom; text-align: left; color: #555; padding-top: 0.4em; max-width: 70em; }
table.data th, table.data td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
table.data th { background: #f3f3f3; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.9em; max-width: 70em; }
pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 0.85em; }
.empty { background: #fff6e0; border: 1px solid #f0d080; padding: 0.8em; }
table.answer td { min-width: 7em; } .better { color: #1a7f37; font-weight: bold; }
.worse { color: #b42318; font-weight: bold; } .tie { color: #444; font-weight: bold; }
.note { color: #555; font-size: 0.9em; max-width: 70em; }
td.error { font-family: monospace; font-size: 0.9em; white-space: pre-wrap; max-width: 50em; }
"""


def _esc(text: object) -> str:
    return html.escape(str(text))


def render(
    study: StudyData,
    summary: list[Section],
    figures: list[FigureFile],
    tables: list[Table],
    version: str,
    provenance: Provenance | None = None,
) -> str:
    """The whole page as one string: the answer first (headline per task and size, the gain figure), then
    the summary, figures, tables, cost, reproduction, every run, the run counts, failures and the spec."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    answer_figures = [f for f in figures if f.stem.startswith(ANSWER_FIGURE)]
    other_figures = [f for f in figures if not f.stem.startswith(ANSWER_FIGURE)]
    own = {t.name: t for t in tables if t.name in OWN_SECTION_TABLES}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>transferlab report: {_esc(study.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>Study: {_esc(study.name)}</h1>",
        f"<p>{_esc(study.description)}</p>" if study.description else "",
        f'<p class="meta">{_esc(study.directory)} · generated {generated} by transferlab {_esc(version)}</p>',
        _answer_section(study, summary, answer_figures),
        '<nav><a href="#answer">Answer</a><a href="#summary">Summary</a><a href="#figures">Figures</a>'
        '<a href="#tables">Tables</a><a href="#cost">Cost</a><a href="#reproduce">Reproduce</a>'
        '<a href="#all-runs">All runs</a><a href="#runs">Run status</a><a href="#failed">Failed runs</a>'
        '<a href="#spec">Study spec</a></nav>',
        _summary_section([s for s in summary if s.title != ANSWER]),
        _figures_section(study, other_figures),
        _tables_section(study, [t for t in tables if t.name not in OWN_SECTION_TABLES]),
        _cost_section(own.get("cost")),
        _reproduce_section(provenance),
        _all_runs_section(own.get("all_runs")),
        _runs_section(study),
        _failed_section(study),
        _spec_section(study),
        "</body></html>",
    ]
    return "\n".join(p for p in parts if p)


ANSWER_FIGURE = "gain_curves"  # figures shown with the answer, at the top
OWN_SECTION_TABLES = ("cost", "all_runs")  # tables with a section of their own


def _gain_cell(comparison: headline.Comparison | None) -> str:
    if comparison is None:
        return "–"
    css = {"better": "better", "worse": "worse"}.get(comparison.verdict, "tie")
    return (
        f'<span class="{css}">{_esc(headline.points(comparison.gain.absolute))}</span><br>'
        f"<small>{_esc(headline.interval(comparison.gain))}</small><br><b>{_esc(comparison.verdict)}</b>"
    )


def _arm_cell(task, choice) -> str:
    if choice is None:
        return "–"
    count = (
        f"chosen on validation from {choice.n_configs}" if choice.n_configs > 1 else "the only configuration"
    )
    return (
        f"{_esc(task.describe(choice.cell.config))}<br><b>{_esc(choice.cell.test.text())}</b>"
        f"<br><small>{_esc(count)}</small>"
    )


def _answer_section(study: StudyData, summary: list[Section], figures: list[FigureFile]) -> str:
    """Per task, a table: at each size the best transfer, scratch and augmentation configurations (test
    accuracy mean ± std, n), the gains with their 95% CI and verdict, and the recommendation."""
    status = next((s.points for s in summary if s.title == "Status"), [])
    if study.n_usable == 0:
        return f'<section id="answer"><h2>Answer</h2><p class="empty">{_esc(" ".join(status))}</p></section>'
    items = []
    for task in study.tasks:
        answers = headline.answers(task)
        if not answers:
            continue
        rows = "".join(
            f"<tr><td>{_esc(task.size_text(a.size))}</td><td>{_arm_cell(task, a.transfer)}</td>"
            f"<td>{_arm_cell(task, a.references.get('baseline'))}</td>"
            f"<td>{_arm_cell(task, a.references.get('augmentation'))}</td>"
            f"<td>{_gain_cell(a.comparison('baseline'))}</td><td>{_gain_cell(a.comparison('augmentation'))}</td>"
            f"<td>{_esc(a.recommendation)}</td></tr>"
            for a in answers
        )
        items.append(
            f"<h3>{_esc(headline.overview(task, answers))}</h3>"
            '<table class="data answer"><thead><tr><th>Size</th><th>Best transfer</th><th>Training from scratch</th>'
            "<th>Scratch + augmentation</th><th>Transfer − scratch</th><th>Transfer − augmentation</th>"
            f"<th>Recommendation</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    notes = [
        "Each arm is the configuration with the best mean validation accuracy among that arm's runs at that size; "
        "accuracies are test accuracy, mean ± std over repeats (n runs). Gains are in percentage points of test "
        "accuracy with the 95% confidence interval of the difference, paired over the splits both arms share (every arm of a study sees the same images for a given seed and size) and Welch's otherwise; 'no detectable difference' when that interval covers 0.",
        "The test confusion matrices of these arms at the smallest size are under Figures (runs stored "
        "before confusion counts were recorded have none).",
    ]
    if status[1:2] and "not finished" in status[1]:
        notes.insert(0, status[1])
    body = "".join(items) + "".join(f'<p class="note">{_esc(n)}</p>' for n in notes)
    return f'<section id="answer"><h2>Answer</h2>{body}{_figure_items(figures)}</section>'


def _runs_section(study: StudyData) -> str:
    counts = study.counts
    cells = "".join(
        f"<tr><td>{_esc(k)}</td><td>{counts.get(k, 0)}</td></tr>"
        for k in ("done", "failed", "running", "pending")
    )
    roles = "".join(f"<li><b>{_esc(role)}</b>: {_esc(text)}</li>" for role, text in ROLE_HELP.items())
    return (
        f'<section id="runs"><h2>Run status</h2><table class="data"><thead><tr><th>status</th><th>runs</th></tr>'
        f"</thead><tbody>{cells}<tr><th>total</th><th>{study.n_runs}</th></tr></tbody></table>"
        f"<p>Usable finished runs (with a test accuracy): {study.n_usable}. Roles in the tables:</p>"
        f"<ul>{roles}</ul></section>"
    )


def _summary_section(summary: list[Section]) -> str:
    body = "".join(
        f"<h3>{_esc(s.title)}</h3><ul>" + "".join(f"<li>{_esc(p)}</li>" for p in s.points) + "</ul>"
        for s in summary
    )
    return f'<section id="summary"><h2>Summary</h2>{body}</section>'


def _figure_items(figures: list[FigureFile]) -> str:
    items = []
    for figure in figures:
        data = base64.b64encode(figure.png.read_bytes()).decode("ascii")
        items.append(
            f'<figure id="fig-{_esc(figure.stem)}"><img src="data:image/png;base64,{data}" alt="{_esc(figure.title)}">'
            f"<figcaption><b>{_esc(figure.title)}.</b> {_esc(figure.caption)} "
            f'Files: <a href="{_esc(figure.stem)}.png">PNG</a>, <a href="{_esc(figure.stem)}.pdf">PDF</a>.'
            "</figcaption></figure>"
        )
    return "".join(items)


def _figures_section(study: StudyData, figures: list[FigureFile]) -> str:
    if not figures:
        reason = (
            "the study has no runs yet" if study.n_runs == 0 else "no run has finished with a test accuracy"
        )
        return f'<section id="figures"><h2>Figures</h2><p class="empty">No figures: {_esc(reason)}.</p></section>'
    return f'<section id="figures"><h2>Figures</h2>{_figure_items(figures)}</section>'


def _cost_section(table: Table | None) -> str:
    if table is None or not table.rows:
        return '<section id="cost"><h2>Cost</h2><p>No finished run recorded its time.</p></section>'
    files = (
        f'<a href="{table.name}.csv">{table.name}.csv</a>, <a href="{table.name}.tex">{table.name}.tex</a>'
    )
    return f'<section id="cost"><h2>Cost</h2>{table.html()}<p>Files: {files}</p></section>'


def _reproduce_section(provenance: Provenance | None) -> str:
    if provenance is None:
        return ""
    commands = "\n".join(provenance.commands)

    def listing(pairs: list[tuple[str, str]]) -> str:
        return "<ul>" + "".join(f"<li><b>{_esc(k)}</b>: {_esc(v)}</li>" for k, v in pairs) + "</ul>"

    return (
        f'<section id="reproduce"><h2>Reproduce</h2><p>The commands that run every run of this study again '
        f"in a fresh directory and write its report (with the study's own directory as --dir, the same command "
        f"only finishes runs that are missing):</p>"
        f"<pre>{_esc(commands)}</pre><p>Recorded by the runs:</p>{listing(provenance.recorded)}"
        f"<p>The machine that wrote this report (the runs may have used another):</p>"
        f"{listing(provenance.here)}</section>"
    )


def _all_runs_section(table: Table | None) -> str:
    if table is None or not table.rows:
        return '<section id="all-runs"><h2>All runs</h2><p>The study has no runs.</p></section>'
    shown = Table(table.name, table.caption, table.rows[:RUN_ROWS_SHOWN], table.display)
    return f'<section id="all-runs"><h2>All runs</h2>{shown.html()}</section>'


def _tables_section(study: StudyData, tables: list[Table]) -> str:
    if study.n_usable == 0:
        return (
            '<section id="tables"><h2>Tables</h2><p class="empty">No tables: no finished runs.</p></section>'
        )
    items = []
    for table in tables:
        files = f'<a href="{table.name}.csv">{table.name}.csv</a>'
        if table.display:
            files += f', <a href="{table.name}.tex">{table.name}.tex</a>'
            items.append(f"<h3>{_esc(table.name)}</h3>{table.html()}<p>Files: {files}</p>")
        else:
            items.append(
                f"<h3>{_esc(table.name)}</h3><p>{_esc(table.caption)} {len(table.rows)} rows: {files}.</p>"
            )
    items.append('<p>Every run (the long table): <a href="runs.csv">runs.csv</a>.</p>')
    return f'<section id="tables"><h2>Tables</h2>{"".join(items)}</section>'


def _failed_section(study: StudyData) -> str:
    if not study.failed:
        return '<section id="failed"><h2>Failed runs</h2><p>None.</p></section>'
    rows = []
    for run in study.failed[:FAILED_ROWS_SHOWN]:
        spec = run.spec
        size = f"{spec['per_class']}/class" if spec.get("per_class") is not None else spec.get("size")
        rows.append(
            f"<tr><td>{_esc(run.run_id)}</td><td>{_esc(spec.get('strategy'))}</td>"
            f"<td>{_esc(spec.get('dataset'))}</td><td>{_esc(size)}</td><td>{_esc(spec.get('seed'))}</td>"
            f'<td>{run.attempts}</td><td class="error">{_esc(run.error)}</td></tr>'
        )
    more = len(study.failed) - FAILED_ROWS_SHOWN
    tail = f"<p>… and {more} more (see runs.csv).</p>" if more > 0 else ""
    return (
        '<section id="failed"><h2>Failed runs</h2><table class="data"><thead><tr><th>run</th><th>strategy</th>'
        "<th>dataset</th><th>size</th><th>seed</th><th>attempts</th><th>reason</th></tr></thead><tbody>"
        f"{''.join(rows)}</tbody></table>{tail}</section>"
    )


def _spec_section(study: StudyData) -> str:
    if not study.spec_toml:
        return '<section id="spec"><h2>Study spec</h2><p>The study spec was not stored with this study.</p></section>'
    return f'<section id="spec"><h2>Study spec</h2><pre>{_esc(study.spec_toml)}</pre></section>'
