"""Issue 15's convergence evidence: did each network run finish converged, or stop while still improving?

For every (strategy, per_class, lr) cell of the network runs in the given study directories, over seeds:
the steps run out of the budget, train accuracy at the end, the best-validation-loss check that training
restored, and the validation accuracy over the last quarter of the checks (its range and its least-squares
slope per 100 optimizer steps: a flat end has a slope near zero and a small range). Reads the study stores
read-only. Prints markdown.

    python benchmarks/fair_convergence.py runs/fair-arms runs/fair-ft
"""

from __future__ import annotations

import json
import sqlite3
import statistics
import sys
from collections import defaultdict
from pathlib import Path

CELL_FIELDS = ("strategy", "head", "input_size", "head_init", "l2_sp", "layer_decay", "epochs", "lr")


def slope_per_100_steps(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys on xs (optimizer steps), times 100; 0 for fewer than two points."""
    if len(xs) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return 100 * sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0


def main(directories: list[str]) -> None:
    cells: dict[tuple, list[dict]] = defaultdict(list)
    for directory in directories:
        db = sqlite3.connect(f"file:{Path(directory) / 'study.sqlite'}?mode=ro", uri=True)
        for run_id, result in db.execute("SELECT run_id, result FROM runs WHERE status = 'done'"):
            result = json.loads(result)
            budget = result.get("budget") or {}
            if not budget or result["spec"]["strategy"] == "extract" and budget.get("rule") is None:
                continue
            history = db.execute(
                "SELECT epoch, train_accuracy, val_loss, val_accuracy FROM history WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
            if len(history) < 2:
                continue
            spe = budget.get("steps_per_epoch") or 1
            tail = history[-max(2, len(history) // 4) :]
            steps = [epoch * spe for epoch, *_ in tail]
            accs = [val_acc for *_, val_acc in tail]
            spec = result["spec"]
            key = (Path(directory).name,) + tuple(
                (f, spec.get(f)) for f in CELL_FIELDS if spec.get(f) is not None
            )
            cells[key + (("per_class", spec["per_class"]),)].append(
                {
                    "steps_run": budget.get("steps_run"),
                    "steps": budget.get("steps"),
                    "train_acc": history[-1][1],
                    "best_step": result["best_epoch"] * spe,
                    "tail_range": max(accs) - min(accs),
                    "tail_slope": slope_per_100_steps(steps, accs),
                }
            )
    print(
        "| study | cell | n | steps run / budget | train acc at end | restored check (step) "
        "| val acc range, last quarter | val acc slope per 100 steps, last quarter |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, runs in sorted(cells.items(), key=lambda kv: str(kv[0])):
        study, *fields = key
        name = " ".join(f"{k}={v}" for k, v in fields)

        def spread(name: str, digits: int = 3, runs: list[dict] = runs) -> str:
            values = [r[name] for r in runs]
            return f"{statistics.fmean(values):.{digits}f} ± {statistics.pstdev(values):.{digits}f}"

        steps = "; ".join(f"{r['steps_run']}/{r['steps']}" for r in runs)
        best = "; ".join(str(r["best_step"]) for r in runs)
        print(
            f"| {study} | {name} | {len(runs)} | {steps} | {spread('train_acc')} | {best} "
            f"| {spread('tail_range')} | {spread('tail_slope', 4)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
