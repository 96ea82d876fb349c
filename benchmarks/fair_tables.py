"""Issue 15's before -> after tables from the exported study runs (``transferlab export DIR`` writes
DIR/runs.csv; the study column is DIR's name).

Each arm's "after" is the configuration chosen on validation per seed (the highest validation accuracy
among the arm's grid on that seed's split, ties to the first configuration), whose test accuracy is then
read once. A second table picks, per size and seed, the fine-tuning recipe with the highest validation
accuracy among all the fine-tuning arms given, the way a user without test labels would. Prints markdown.

    python benchmarks/fair_tables.py runs/before/runs.csv runs/fair-arms/runs.csv runs/fair-ft/runs.csv
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

ARM_FIELDS = ("strategy", "head", "input_size", "layer", "head_init", "l2_sp", "layer_decay", "epochs")
TUNED_FIELDS = ("lr", "C")


def arm_of(row: dict) -> tuple:
    return tuple((name, row[name]) for name in ARM_FIELDS if row.get(name) not in ("", None))


def mean_std(values: list[float]) -> str:
    spread = f" ± {statistics.stdev(values):.3f}" if len(values) > 1 else ""
    return f"{statistics.fmean(values):.3f}{spread} (n={len(values)})"


def budget_text(row: dict) -> str:
    budget = json.loads(row.get("budget") or "{}")
    if not budget:
        return "closed form"
    if budget.get("rule") in (None, "epochs"):
        return f"{budget.get('epochs_run', row['epochs_run'])}/{budget.get('epochs', '?')} epochs"
    return f"{budget.get('steps_run', '?')}/{budget.get('steps', '?')} steps"


def read(paths: list[str]) -> dict[tuple, dict[tuple, dict[int, dict]]]:
    """{(study, arm, per_class): {tuned config: {seed: row}}} of the done runs."""
    cells: dict[tuple, dict[tuple, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        with open(path) as handle:
            for row in csv.DictReader(handle):
                if row["status"] != "done":
                    continue
                key = (Path(path).parent.name, arm_of(row), int(row["per_class"]))
                config = tuple((name, row[name]) for name in TUNED_FIELDS if row.get(name))
                cells[key][config][int(row["seed"])] = row
    return cells


def chosen_rows(configs: dict[tuple, dict[int, dict]]) -> dict[int, tuple[tuple, dict]]:
    """{seed: (config, row)}: per seed, the configuration with the highest validation accuracy."""
    seeds = sorted(set.intersection(*(set(by_seed) for by_seed in configs.values())))
    return {
        seed: max(((c, configs[c][seed]) for c in configs), key=lambda cr: float(cr[1]["val_accuracy"] or 0))
        for seed in seeds
    }


def main(paths: list[str]) -> None:
    cells = read(paths)
    print(
        "| study | arm | per class | configs | chosen (per seed) | val acc | test acc | budget used (per seed) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    finetune: dict[int, dict[int, list[tuple[float, float, str]]]] = defaultdict(lambda: defaultdict(list))
    for (study, arm, size), configs in sorted(
        cells.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])
    ):
        chosen = chosen_rows(configs)
        if not chosen:
            continue
        name = " ".join(f"{k}={v}" for k, v in arm)
        rows = [row for _, row in chosen.values()]
        configs_text = "; ".join(",".join(f"{k}={v}" for k, v in c) or "-" for c, _ in chosen.values())
        print(
            f"| {study} | {name} | {size} | {len(configs)} | {configs_text} "
            f"| {mean_std([float(r['val_accuracy']) for r in rows])} "
            f"| {mean_std([float(r['test_accuracy']) for r in rows])} "
            f"| {'; '.join(budget_text(r) for r in rows)} |"
        )
        if dict(arm).get("strategy") == "finetune" and study != "before":
            for seed, (_, row) in chosen.items():
                finetune[size][seed].append((float(row["val_accuracy"]), float(row["test_accuracy"]), name))
    if finetune:
        print(
            "\nFine-tuning, the recipe chosen on validation per seed among every fine-tuning arm run at that size:\n"
        )
        print("| per class | recipes compared | chosen (per seed) | test acc |")
        print("|---|---|---|---|")
        for size, by_seed in sorted(finetune.items()):
            picks = {seed: max(options) for seed, options in sorted(by_seed.items())}
            recipes = max(len(options) for options in by_seed.values())
            print(
                f"| {size} | {recipes} | {'; '.join(name.split('input_size=64 ')[-1] for *_, name in picks.values())} "
                f"| {mean_std([test for _, test, _ in picks.values()])} |"
            )


if __name__ == "__main__":
    main(sys.argv[1:])
