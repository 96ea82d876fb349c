"""What a study cost and how to get it again: seconds per run and in total per strategy, the command that
reproduces the study, the environment its runs recorded (code version, device, threads) next to the one
that wrote the report, and every run in one table.

Times are the runs' own ``total_seconds`` (wall clock inside the run: feature extraction, training,
evaluation); features cached by one run and reused by others are paid once, by the first.
"""

from __future__ import annotations

import math
import os
import platform
import shlex
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass

from transferlab.report.aggregate import Cell, SizeKey, StudyData, strategy_costs
from transferlab.report.tables import Column, Table

RUN_ROWS_SHOWN = 500  # rows of the all-runs table on the page; every run is in runs.csv


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def cost_table(study: StudyData, runs: list[dict]) -> Table:
    """Per task and strategy: finished runs, seconds per run (mean ± std, n) and in total, and how much
    of it was feature extraction; then the study's total."""
    by_id = {run["run_id"]: run["result"] or {} for run in runs}
    rows = []
    for task in study.tasks:
        features: dict[str, float] = defaultdict(float)
        for cell in task.cells:
            for run_id in cell.run_ids:
                value = by_id.get(run_id, {}).get("features_seconds")
                features[cell.config.strategy] += float(value) if _finite(value) else 0.0
        for strategy, cost in strategy_costs(task).items():
            rows.append(
                {
                    "task": task.label,
                    "strategy": strategy,
                    "runs": cost.per_run.n,
                    "seconds_per_run_mean": cost.per_run.mean,
                    "seconds_per_run_std": cost.per_run.std,
                    "seconds_total": cost.total,
                    "features_seconds_total": features[strategy],
                }
            )
    if rows:
        rows.append(
            {
                "task": "all tasks",
                "strategy": "all",
                "runs": sum(r["runs"] for r in rows),
                "seconds_per_run_mean": None,
                "seconds_per_run_std": None,
                "seconds_total": math.fsum(r["seconds_total"] for r in rows),
                "features_seconds_total": math.fsum(r["features_seconds_total"] for r in rows),
            }
        )

    def per_run(r: dict) -> str:
        if r["seconds_per_run_mean"] is None:
            return "–"
        std = "" if r["seconds_per_run_std"] is None else f" ± {r['seconds_per_run_std']:,.1f}"
        return f"{r['seconds_per_run_mean']:,.1f}{std} (n={r['runs']})"

    display = [
        Column("Task", lambda r: r["task"]),
        Column("Strategy", lambda r: r["strategy"]),
        Column("Runs", lambda r: str(r["runs"])),
        Column("Seconds per run", per_run),
        Column("Total", lambda r: _duration(r["seconds_total"])),
        Column("of which feature extraction", lambda r: _duration(r["features_seconds_total"])),
    ]
    caption = (
        "Cost: wall-clock seconds inside each finished run (features, training, evaluation), mean ± std "
        "over the strategy's runs, and their sum. Features extracted once are cached and reused, so the "
        "first run of a backbone pays for all that share them; parallel workers overlap, so the study's "
        "elapsed time can be shorter than the total."
    )
    return Table("cost", caption, rows, display)


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    return f"{seconds / 60:,.1f} min"


def all_runs_table(study: StudyData, runs: list[dict]) -> Table:
    """Every run: status, task, configuration, size, seed, validation and test accuracy, seconds."""
    placed: dict[str, tuple[str, Cell]] = {}
    for task in study.tasks:
        for cell in task.cells:
            for run_id in cell.run_ids:
                placed[run_id] = (task.describe(cell.config), cell)
    rows = []
    for run in runs:
        spec, result = run["spec"], run["result"] or {}
        configuration, _ = placed.get(run["run_id"], (str(spec.get("strategy")), None))
        rows.append(
            {
                "run_id": run["run_id"],
                "status": run["status"],
                "configuration": configuration,
                "size": SizeKey.of(spec).label,
                "n_train": result.get("n_train"),
                "seed": spec.get("seed"),
                "swap": spec.get("swap"),
                "val_accuracy": result.get("val_accuracy"),
                "test_accuracy": result.get("test_accuracy"),
                "seconds": result.get("total_seconds"),
                "error": run["error"] or result.get("error"),
            }
        )

    def number(key: str, digits: int) -> object:
        return lambda r: f"{r[key]:.{digits}f}" if _finite(r[key]) else "–"

    display = [
        Column("Run", lambda r: r["run_id"]),
        Column("Status", lambda r: r["status"]),
        Column("Configuration", lambda r: r["configuration"]),
        Column("Size", lambda r: r["size"]),
        Column("Seed", lambda r: str(r["seed"]) + (" (B→A)" if r["swap"] else "")),
        Column("Val. acc.", number("val_accuracy", 3)),
        Column("Test acc.", number("test_accuracy", 3)),
        Column("Seconds", number("seconds", 1)),
    ]
    shown = f"the first {RUN_ROWS_SHOWN} of {len(rows)} runs; all" if len(rows) > RUN_ROWS_SHOWN else "All"
    caption = (
        f"Every run of the study in grid order ({shown} are in runs.csv with every spec and result field). "
        "Configuration: as in the other tables; accuracies are fractions of the validation and test sets."
    )
    return Table("all_runs", caption, rows, display)


@dataclass(frozen=True)
class Provenance:
    """How the study ran and how to run it again, as (label, text) pairs ready to show."""

    commands: list[str]
    recorded: list[tuple[str, str]]  # what the runs recorded
    here: list[tuple[str, str]]  # the machine writing this report


def _counted(counter: Counter) -> str:
    if not counter:
        return "no finished run to read it from"
    return "; ".join(
        f"{value} ({count} run{'s' if count != 1 else ''})" for value, count in counter.most_common()
    )


def provenance(study: StudyData, runs: list[dict]) -> Provenance:
    directory = study.directory
    spec = directory / "spec.toml"
    again = shlex.quote(f"{directory}-again")
    if spec.is_file():
        commands = [
            f"transferlab study {shlex.quote(str(spec))} --dir {again}",
            f"transferlab report {again}",
        ]
    else:
        where = (
            "save the spec at the end of this page as spec.toml"
            if study.spec_toml
            else "the spec was not stored either: use the file the study was started with"
        )
        commands = [
            f"# spec.toml is not in the study directory; {where}",
            f"transferlab study spec.toml --dir {again}",
            f"transferlab report {again}",
        ]
    versions, devices, threads = Counter(), Counter(), Counter()
    for run in runs:
        if run["status"] != "done":
            continue
        result = run["result"] or {}
        versions[run.get("version") or result.get("code_version") or "not recorded"] += 1
        devices[str(run["spec"].get("device") or "not recorded")] += 1
        value = (result.get("hyperparameters") or {}).get("torch_threads")
        threads[str(value) if value is not None else "not recorded"] += 1
    recorded = [
        ("transferlab code version", _counted(versions)),
        ("device", _counted(devices)),
        ("torch threads per run", _counted(threads)),
    ]
    return Provenance(commands, recorded, _here())


def _here() -> list[tuple[str, str]]:
    import numpy
    import torch

    from transferlab import __version__

    return [
        ("transferlab", __version__),
        ("Python", sys.version.split()[0]),
        ("torch", torch.__version__),
        ("numpy", numpy.__version__),
        ("platform", platform.platform()),
        ("CPU cores", str(os.cpu_count())),
        ("CUDA available", str(torch.cuda.is_available())),
    ]
