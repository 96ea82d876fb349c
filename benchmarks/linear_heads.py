"""(d) transferlab's logreg and svm heads vs scikit-learn used directly, on the same cached features.

Features: EfficientNet-Lite0 (ImageNet) at 64 px on Fashion-MNIST; training subsets of 1 % and 10 % of
each class's pool (540 and 5,400 images; the 100 % subset makes the svm head's cross-validation take
many minutes), validation 10 % (unused by these heads), test = the 10,000 official test images, seed 0.

    transferlab logreg   LogRegHead: standardise -> LogisticRegression(C=1, lbfgs, max_iter=1000)
    sklearn logreg       LogisticRegression() on the raw features (defaults: C=1, lbfgs, max_iter=100)
    transferlab svm      SVMHead: standardise -> LinearSVC, C in 1e-4..10 chosen by 3-fold CV (18 fits + 1)
    sklearn svm          LinearSVC() on the raw features (defaults: C=1)
Reported: fit seconds (best of ``--repeats``) and test accuracy. The head's extra time buys
standardisation and (svm) a cross-validated C; this shows what each costs and what it gives.

    python benchmarks/linear_heads.py [--sizes 0.01,0.1] [--repeats 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from transferlab.data.datasets import load_dataset
from transferlab.models.heads import LogRegHead, SVMHead
from transferlab.runs import RunSpec
from transferlab.strategies.extract import _task_features

BASE = {"strategy": "extract", "dataset": "fashion-mnist", "backbone": "efficientnet_lite0.in1k", "input_size": 64,
        "head": "logreg", "seed": 0}  # fmt: skip
CONTENDERS = {
    "transferlab logreg": lambda: LogRegHead(),
    "sklearn LogisticRegression": lambda: LogisticRegression(),
    "transferlab svm (CV over C)": lambda: SVMHead(seed=0),
    "sklearn LinearSVC": lambda: LinearSVC(random_state=0),
}


def measure(sizes: list[float], repeats: int) -> dict:
    data = load_dataset("fashion-mnist")
    rows = []
    for size in sizes:
        _, features, labels, _ = _task_features(RunSpec(**BASE, size=size).resolved(), data, progress=False)
        for name, make in CONTENDERS.items():
            best, accuracy = float("inf"), None
            for _ in range(repeats):
                model = make()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    started = time.perf_counter()
                    model.fit(features["train"], labels["train"])
                    best = min(best, time.perf_counter() - started)
                converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
                accuracy = float((model.predict(features["test"]) == labels["test"]).mean())
            rows.append({"size": size, "n_train": len(labels["train"]), "model": name, "fit_seconds": round(best, 3),
                         "test_accuracy": round(accuracy, 4), "converged": converged})  # fmt: skip
    return {"feature_dim": int(features["train"].shape[1]), "n_test": len(labels["test"]), "rows": rows}


def print_table(result: dict) -> None:
    print(f"(d) logreg/svm heads vs scikit-learn on the same lite0 features ({result['feature_dim']} dims), "
          f"test on {result['n_test']} images")  # fmt: skip
    print(f"{'size':>6} {'n_train':>7}  {'model':<28} {'fit s':>8} {'test acc':>8}  converged")
    for r in result["rows"]:
        print(f"{100 * r['size']:>5g}% {r['n_train']:>7}  {r['model']:<28} {r['fit_seconds']:>8.2f} "
              f"{r['test_accuracy']:>8.4f}  {'yes' if r['converged'] else 'no (max_iter reached)'}")  # fmt: skip


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0.01,0.1", help="training fractions")
    parser.add_argument("--repeats", type=int, default=1, help="fits per model; the best time is reported")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = measure([float(s) for s in args.sizes.split(",")], args.repeats)
    print(json.dumps(result, indent=1)) if args.json else print_table(result)
    return result


if __name__ == "__main__":
    main()
