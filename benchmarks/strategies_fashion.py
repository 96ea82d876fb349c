"""Issue 4's acceptance measurements: every strategy on Fashion-MNIST at 0.1% and 1%, 3 seeds, mean ± std.

Usage:
    python benchmarks/strategies_fashion.py run GROUP [GROUP ...] --out results.jsonl [--sizes 0.01]
    python benchmarks/strategies_fashion.py summary results.jsonl

Groups: extract, scratch, augment, finetune, snt, snt1 (snt at 1%; the others cover 0.1% and 1%).
Runs append one JSON line each and are skipped when already in the file, so an interrupted measurement
resumes. Shared protocol (the issue's reference: Adam, 20 epochs, batch 50): validation 50 images per
class, test capped at 300 per class (3,000 images, the same for every strategy), lite0 at 64 px inputs.
snt: source classes 0-4 (T-shirt..Coat), target 5-9 (Sandal..Ankle boot); the source model learns 5% of
the source pool (1,345 images) for 10 epochs so that one source model per seed fits the CPU budget.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from transferlab.data.datasets import load_dataset
from transferlab.runs import RunSpec
from transferlab.strategies import run

SEEDS = (0, 1, 2)
SIZES = (0.001, 0.01)
COMMON = {"dataset": "fashion-mnist", "val_size": 50, "test_per_class": 300, "epochs": 20, "batch_size": 50}
LITE0 = {"backbone": "efficientnet_lite0.in1k", "input_size": 64}
SNT = {"source": "0,1,2,3,4", "target": "5,6,7,8,9", "source_size": 0.05, "source_epochs": 10}


def plan(group: str, sizes: tuple[float, ...] = SIZES) -> list[tuple[str, dict]]:
    """(label, spec fields) of every run in ``group`` at ``sizes``."""
    runs = []
    for size in sizes if group != "snt1" else (0.01,):
        for seed in SEEDS:
            base = {**COMMON, "size": size, "seed": seed}
            if group == "extract":
                runs += [
                    ("extract logreg", {**base, **LITE0, "strategy": "extract", "head": "logreg"}),
                    ("extract svm", {**base, **LITE0, "strategy": "extract", "head": "svm"}),
                    (
                        "extract fc2 sigmoid lr1e-3",
                        {
                            **base,
                            **LITE0,
                            "strategy": "extract",
                            "head": "fc2",
                            "activation": "sigmoid",
                            "lr": 1e-3,
                        },
                    ),
                    ("extract gap", {**base, **LITE0, "strategy": "extract", "head": "gap", "lr": 1e-2}),
                    (
                        "extract logreg stage5",
                        {**base, **LITE0, "strategy": "extract", "head": "logreg", "layer": "stage5"},
                    ),
                ]
            elif group in ("scratch", "augment"):
                runs.append((f"{group} cifar_cnn", {**base, "strategy": group}))
            elif group == "finetune":
                runs += [
                    (f"finetune k={k}", {**base, **LITE0, "strategy": "finetune", "frozen": k})
                    for k in (0, 5)
                ]
            elif group in ("snt", "snt1"):
                if group == "snt" and size != 0.001:
                    continue
                runs.append(("snt base", {**base, **SNT, "strategy": "snt", "transfer": 0}))
                for n in range(2, 10):  # unit 1 of cifar_cnn is the parameter-free input: n=1 is base
                    runs.append((f"snt SnT n={n}", {**base, **SNT, "strategy": "snt", "transfer": n}))
                    runs.append(
                        (f"snt SnT+ n={n}", {**base, **SNT, "strategy": "snt", "transfer": n, "frozen": 0})
                    )
            else:
                raise SystemExit(f"unknown group {group!r}")
    return runs


def run_groups(groups: list[str], out: Path, sizes: tuple[float, ...]) -> None:
    done = set()
    if out.exists():
        done = {
            json.dumps(json.loads(line)["fields"], sort_keys=True)
            for line in out.read_text().splitlines()
            if line
        }
    data = load_dataset("fashion-mnist")
    for group in groups:
        for label, fields in plan(group, sizes):
            key = json.dumps(fields, sort_keys=True)
            if key in done:
                continue
            result = run(RunSpec(**fields), data)
            row = {
                "label": label,
                "fields": fields,
                "size": fields["size"],
                "seed": fields["seed"],
                "status": result.status,
                "error": result.error,
                "test_accuracy": result.test_accuracy,
                "val_accuracy": result.val_accuracy,
                "train_accuracy": result.train_accuracy,
                "n_train": result.n_train,
                "seconds": round(result.total_seconds, 1),
                "hyperparameters": result.hyperparameters,
            }
            with out.open("a") as f:
                f.write(json.dumps(row) + "\n")
            print(
                f"{label:28s} size={fields['size']:<6g} seed={fields['seed']} {result.status} "
                f"test={result.test_accuracy} ({result.total_seconds:.0f} s)",
                flush=True,
            )


def summary(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    groups: dict[tuple[str, float], list[float]] = {}
    for r in rows:
        if r["status"] == "ok":
            groups.setdefault((r["label"], r["size"]), []).append(r["test_accuracy"])
    failed = [r for r in rows if r["status"] != "ok"]
    print(f"{'strategy':28s} {'size':>6s} {'test accuracy':>17s}  n  seconds/run")
    for (label, size), accs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        secs = statistics.mean(r["seconds"] for r in rows if r["label"] == label and r["size"] == size)
        spread = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"{label:28s} {100 * size:5.1f}% {statistics.mean(accs):8.3f} ± {spread:.3f}  {len(accs)}  {secs:7.0f}"
        )
    for r in failed:
        print(f"FAILED {r['label']} size={r['size']} seed={r['seed']}: {r['error']}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("groups", nargs="+")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument(
        "--sizes", type=float, nargs="+", default=SIZES, help="training fractions (default 0.001 0.01)"
    )
    s = sub.add_parser("summary")
    s.add_argument("path", type=Path)
    args = parser.parse_args()
    if args.command == "run":
        run_groups(args.groups, args.out, tuple(args.sizes))
    else:
        summary(args.path)


if __name__ == "__main__":
    main()
