"""The quickstart's finetune run with its frozen prefix computed once (strategies/prefix.py) vs recomputed
in every step, as before.

One run = examples/quickstart.toml's finetune configuration: efficientnet_lite0.in1k at 64 px, units 1-6
frozen, linear head, 20 epochs, Fashion-MNIST with 5 labels per class, validation 50 per class, test 200
per class. Measured interleaved in one process, ``--rounds`` times, each round in this order:

    full   the whole network on images (the path before this change; forced by a 0-byte map budget)
    cold   maps of units 1-6 computed and stored (an empty feature cache, no backbone or trace kept in
           the process: what the first finetune run of a study pays)
    warm   maps read from the cache the cold run filled (a second study with the same backbone/images)

Times are wall-clock of ``strategies.run`` (building the backbone included). Then the accuracy of the
quickstart's three seeds, full network vs maps (warm).

    OMP_NUM_THREADS=1 python benchmarks/finetune_prefix.py [--rounds 3] [--seeds 0,1,2] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time

import torch

from transferlab import features, load_dataset
from transferlab.runs import RunSpec
from transferlab.strategies import prefix, run

SPEC = dict(
    strategy="finetune",
    dataset="fashion-mnist",
    backbone="efficientnet_lite0.in1k",
    input_size=64,
    per_class=5,
    val_size=50,
    test_per_class=200,
    frozen=6,
    epochs=20,
)


def one_run(path: str, seed: int, data, cache: str) -> tuple[float, dict]:
    """(seconds, result) of one finetune run on ``path`` ("full", "cold" or "warm")."""
    os.environ["TRANSFERLAB_CACHE"] = cache
    budget = prefix.PREFIX_BUDGET_BYTES
    if path == "full":
        prefix.PREFIX_BUDGET_BYTES = 0
    if path == "cold":
        features._NAMED.clear()  # as a fresh worker process: the named backbone and its trace rebuilt
    try:
        started = time.perf_counter()
        result = run(RunSpec(**SPEC, seed=seed), data)
        seconds = time.perf_counter() - started
    finally:
        prefix.PREFIX_BUDGET_BYTES = budget
    if not result.ok or result.hyperparameters["prefix_cached"] is not (path != "full"):
        raise SystemExit(f"{path} run did not take its path: {result.error or result.hyperparameters}")
    return seconds, result.to_dict()


def summary(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 2),
        "sd": round(statistics.stdev(values), 2) if len(values) > 1 else 0.0,
        "n": len(values),
        "values": [round(v, 2) for v in values],
    }


def measure(rounds: int, seeds: list[int]) -> dict:
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    data = load_dataset("fashion-mnist")
    times: dict[str, list[float]] = {"full": [], "cold": [], "warm": []}
    ratios: dict[str, list[float]] = {"cold": [], "warm": []}
    parts: dict[str, list[float]] = {"cold_features_s": [], "warm_features_s": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            cache = f"{tmp}/round{r}"
            took = {}
            for path in ("full", "cold", "warm"):
                took[path], result = one_run(path, 0, data, cache)
                times[path].append(took[path])
                if path != "full":
                    parts[f"{path}_features_s"].append(result["features_seconds"])
            for path in ("cold", "warm"):
                ratios[path].append(took["full"] / took[path])
        accuracy = {"full": [], "prefix": []}
        for seed in seeds:
            cache = f"{tmp}/seeds"
            for path, name in (("full", "full"), ("cold", "prefix")):
                _, result = one_run(path, seed, data, cache)
                accuracy[name].append(result["test_accuracy"])
    return {
        "spec": SPEC,
        "threads": torch.get_num_threads(),
        "seconds": {k: summary(v) for k, v in times.items()},
        "speedup_full_over": {k: summary(v) for k, v in ratios.items()},
        "features_seconds": {k: summary(v) for k, v in parts.items()},
        "test_accuracy": {
            k: {"seeds": seeds, "values": v, "mean": round(statistics.mean(v), 4)}
            for k, v in accuracy.items()
        },
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = measure(args.rounds, [int(s) for s in args.seeds.split(",")])
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        s, x = result["seconds"], result["speedup_full_over"]
        print(
            f"quickstart finetune run (lite0 64 px, frozen=6, 20 epochs, 5/class), {result['threads']} thread(s):"
        )
        for path in ("full", "cold", "warm"):
            extra = f"  full/{path} = {x[path]['mean']:.2f}x (sd {x[path]['sd']:.2f})" if path in x else ""
            print(f"  {path:<5} {s[path]['mean']:7.2f} s (sd {s[path]['sd']:.2f}, n={s[path]['n']}){extra}")
        for name, acc in result["test_accuracy"].items():
            print(f"  test accuracy {name:<6} seeds {acc['seeds']}: {acc['values']} (mean {acc['mean']:.4f})")
    return result


if __name__ == "__main__":
    main()
