"""Issue 15's before -> after tables from the exported study runs (``transferlab export DIR``).

Each arm's "after" is the configuration chosen on validation per seed (mean validation accuracy over the
arm's grid decides, as the report does); test accuracy is then read once. Prints markdown.

    python benchmarks/fair_tables.py runs/before/runs.csv runs/fair-arms/runs.csv runs/fair-finetune/runs.csv
"""

from __future__ import annotations

import csv
import json
import statistics
import sys
from collections import defaultdict

ARM_FIELDS = ("strategy", "head", "input_size", "layer", "head_init", "l2_sp", "layer_decay", "epochs")
TUNED_FIELDS = ("lr", "C")


def arm_of(row: dict) -> tuple:
    return tuple((name, row[name]) for name in ARM_FIELDS if row.get(name) not in ("", None))


def main(paths: list[str]) -> None:
    cells: dict[tuple, dict[tuple, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for path in paths:
        with open(path) as handle:
            for row in csv.DictReader(handle):
                if row["status"] != "done":
                    continue
                key = (path.split("/")[-2], arm_of(row), int(row["per_class"]))
                config = tuple((name, row[name]) for name in TUNED_FIELDS if row.get(name))
                cells[key][config][int(row["seed"])] = row
    print(
        "| study | arm | per class | configs | chosen (per seed) | test acc mean ± std (n) | epochs run / budget steps |"
    )
    print("|---|---|---|---|---|---|---|")
    for (study, arm, size), configs in sorted(
        cells.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), kv[0][2])
    ):
        seeds = sorted(set.intersection(*(set(by_seed) for by_seed in configs.values())))
        chosen, tests, budgets = [], [], []
        for seed in seeds:
            # Choose on validation accuracy, ties to the first config (grid order).
            config = max(configs, key=lambda c: float(configs[c][seed]["val_accuracy"] or 0))
            row = configs[config][seed]
            chosen.append(",".join(f"{k}={v}" for k, v in config) or "-")
            tests.append(float(row["test_accuracy"]))
            budget = json.loads(row["budget"] or "{}")
            budgets.append(f"{row['epochs_run']}/{budget.get('steps', '?')}")
        spread = statistics.stdev(tests) if len(tests) > 1 else float("nan")
        name = " ".join(f"{k}={v}" for k, v in arm)
        print(
            f"| {study} | {name} | {size} | {len(configs)} | {'; '.join(chosen)} | "
            f"{statistics.mean(tests):.3f} ± {spread:.3f} ({len(tests)}) | {'; '.join(budgets)} |"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
