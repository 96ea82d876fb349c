"""Issue 8's acceptance measurement: does LogME (and the other scores) rank candidate sources the way the
real extract accuracy at 1% does, on Fashion-MNIST?

Usage:
    python benchmarks/advise_fashion.py [--out benchmarks/results/advise_fashion.json]

Target: Fashion-MNIST classes 5-9 (Sandal, Shirt, Sneaker, Bag, Ankle boot) at 1% of each class's pool
(60 images per class, 300 in all), validation 50 per class, test capped at 300 per class (the protocol of
strategies_fashion.py). Candidates (5): ImageNet efficientnet_lite0 and lite1 (64 px), a cifar_cnn trained
on the other Fashion-MNIST classes 0-4 (``cifar_cnn@source``), a cifar_cnn trained on MNIST
(``cifar_cnn@mnist``), and cifar_cnn from random init (``cifar_cnn@random``); the cifar_cnn models at their
native 32 px; source models learn 5% of their pool for 10 epochs (one source model each, seed 0).
Real accuracy: the extract strategy's computation (cached features of the candidate -> logistic-regression
head) for seeds 0, 1, 2, test accuracy mean ± std. Scores: on each seed's 1% training subset, before any
training of a head. Kendall tau between each score and the mean accuracy, per seed (mean ± std, n=3).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

from transferlab.advise.advisor import assess, kendall_tau
from transferlab.advise.scores import SCORES
from transferlab.advise.sources import SourceSettings, resolve_source
from transferlab.data.datasets import load_dataset
from transferlab.data.splits import class_split, make_task
from transferlab.features import cached_features
from transferlab.models.heads import make_head

SEEDS = (0, 1, 2)
SOURCE, TARGET = "0,1,2,3,4", "5,6,7,8,9"
CANDIDATES = {  # candidate -> input side in pixels
    "efficientnet_lite0.in1k": 64,
    "efficientnet_lite1.in1k": 64,
    "cifar_cnn@source": None,
    "cifar_cnn@mnist": None,
    "cifar_cnn@random": None,
}
SOURCE_TRAINING = {"epochs": 10, "size": 0.05}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/advise_fashion.json")
    args = parser.parse_args()
    data = load_dataset("fashion-mnist")
    split = class_split(data, SOURCE, TARGET)
    rows = {}
    for name, side in CANDIDATES.items():
        settings = SourceSettings(input_size=side, seed=0, **SOURCE_TRAINING)
        started = time.perf_counter()
        source = resolve_source(name, data, split.source, settings)
        build_seconds = time.perf_counter() - started
        per_seed = []
        for seed in SEEDS:
            task = make_task(data, split.target, size=0.01, val_size=50, test_per_class=300, seed=seed)
            labels = {part: task.labels(data, part) for part in ("train", "val", "test")}
            started = time.perf_counter()
            advice = assess(
                source,
                data,
                task.train,
                labels["train"],
                len(task.train) / 5,
                SourceSettings(input_size=side, seed=seed),
                with_similarity=seed == 0,
            )
            score_seconds = time.perf_counter() - started
            features = {
                part: cached_features(data, getattr(task, part), source.backbone, size=side, device="cpu")
                for part in ("train", "val", "test")
            }
            head = make_head("logreg").fit(features["train"], labels["train"])
            per_seed.append(
                {
                    "seed": seed,
                    "scores": advice.scores,
                    "score_seconds": score_seconds,
                    "test_accuracy": head.score(features["test"], labels["test"]),
                    "val_accuracy": head.score(features["val"], labels["val"]),
                    "similarity": advice.similarity,
                    "quadrant": advice.placement.label,
                    "n_train": len(task.train),
                    "n_test": len(task.test),
                }
            )
        accuracies = [r["test_accuracy"] for r in per_seed]
        rows[name] = {
            "per_seed": per_seed,
            "accuracy_mean": statistics.mean(accuracies),
            "accuracy_std": statistics.stdev(accuracies),
            "build_seconds": build_seconds,
            "source_record": source.record,
            "reference": source.reference_note,
        }
        print(
            f"{name}: extract accuracy {rows[name]['accuracy_mean']:.4f} ± {rows[name]['accuracy_std']:.4f} "
            f"(n=3); LogME seed 0 {per_seed[0]['scores']['logme']:.4f}",
            flush=True,
        )
    names = list(rows)
    means = [rows[n]["accuracy_mean"] for n in names]
    taus = {}
    for score in SCORES:
        per_seed_tau = [
            kendall_tau([rows[n]["per_seed"][i]["scores"][score] for n in names], means)
            for i in range(len(SEEDS))
        ]
        values = [t for t in per_seed_tau if t is not None]
        taus[score] = {
            "per_seed": per_seed_tau,
            "mean": statistics.mean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None,
        }
    out = {"candidates": rows, "kendall_tau": taus, "protocol": __doc__}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"\n{'candidate':26s} {'accuracy':>16s} " + " ".join(f"{s:>9s}" for s in SCORES))
    for n in sorted(names, key=lambda n: -rows[n]["accuracy_mean"]):
        s0 = np.mean([[r["scores"][s] for s in SCORES] for r in rows[n]["per_seed"]], 0)
        print(
            f"{n:26s} {rows[n]['accuracy_mean']:.4f} ± {rows[n]['accuracy_std']:.4f} "
            + " ".join(f"{v:9.4f}" for v in s0)
        )
    for score, t in taus.items():
        print(f"Kendall tau {score}: per seed {t['per_seed']}, mean {t['mean']} ± {t['std']}")


if __name__ == "__main__":
    main()
