"""(d) transferlab's logreg and svm heads vs scikit-learn used directly, on the same cached features.

Features: EfficientNet-Lite0 (ImageNet) at 64 px on Fashion-MNIST; training subsets of 1 % and 10 % of
each class's pool (540 and 5,400 images), validation 10 % (unused by these heads), test = the 10,000
official test images, seed 0. Like with like: both sides standardise and search the same C values on the
same stratified folds; the head differs only in its solver choice.

    transferlab logreg   LogRegHead: standardise -> LogisticRegression(C=1, lbfgs, max_iter=1000)
    sklearn logreg       make_pipeline(StandardScaler(), LogisticRegression(C=1, max_iter=1000))
    transferlab svm      SVMHead(Cs): standardise -> LinearSVC(dual=True), C by 3-fold stratified CV
    sklearn svm          GridSearchCV(make_pipeline(StandardScaler(), LinearSVC()), same Cs, same folds):
                         scikit-learn's default dual="auto" (primal when images > features)
Both svm sides search the head's default C values up to ``--svm-max-C`` (default 1e-2, i.e. 1e-4, 1e-3,
1e-2): at 10 % scikit-learn's primal solver takes over 4 minutes per fit at C >= 0.1, so the full grid
(``--svm-max-C 10``, the head's default 1e-4..10) runs for over half an hour that way; the head alone
needs several minutes for it. The C the CV picked is reported both ways.
Reported: fit seconds (best of ``--repeats``) and test accuracy.

    python benchmarks/linear_heads.py [--sizes 0.01,0.1] [--svm-max-C 0.01] [--repeats 1] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings

from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from transferlab.data.datasets import load_dataset
from transferlab.models.heads import LogRegHead, SVMHead
from transferlab.runs import RunSpec
from transferlab.strategies.extract import _task_features

BASE = {
    "strategy": "extract",
    "dataset": "fashion-mnist",
    "backbone": "efficientnet_lite0.in1k",
    "input_size": 64,
    "head": "logreg",
    "seed": 0,
}
HEAD_CS = SVMHead().Cs  # the head's default search space


def contenders(Cs: list[float]) -> dict:
    """name -> (make an unfitted model, read the chosen C from the fitted one or None)."""
    folds = StratifiedKFold(3, shuffle=True, random_state=0)  # what SVMHead(cv=3, seed=0) uses
    plain_svm = make_pipeline(StandardScaler(), LinearSVC(random_state=0))
    return {
        "transferlab logreg": (lambda: LogRegHead(), None),
        "sklearn logreg (same pipeline)": (
            lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000)),
            None,
        ),
        "transferlab svm (CV over C)": (lambda: SVMHead(Cs=tuple(Cs), seed=0), lambda m: m.C_),
        "sklearn svm (GridSearchCV)": (
            lambda: GridSearchCV(plain_svm, {"linearsvc__C": Cs}, scoring="accuracy", cv=folds),
            lambda m: m.best_params_["linearsvc__C"],
        ),
    }


def measure(sizes: list[float], repeats: int, svm_max_C: float) -> dict:
    Cs = [c for c in HEAD_CS if c <= svm_max_C]
    if not Cs:
        raise SystemExit(f"--svm-max-C {svm_max_C:g} leaves no C value; the head's grid is {list(HEAD_CS)}")
    data = load_dataset("fashion-mnist")
    rows = []
    for size in sizes:
        _, features, labels, _ = _task_features(RunSpec(**BASE, size=size).resolved(), data, progress=False)
        for name, (make, chosen) in contenders(Cs).items():
            best, accuracy, C = float("inf"), None, None
            for _ in range(repeats):
                model = make()
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always", ConvergenceWarning)
                    started = time.perf_counter()
                    model.fit(features["train"], labels["train"])
                    best = min(best, time.perf_counter() - started)
                converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
                accuracy = float((model.predict(features["test"]) == labels["test"]).mean())
                C = None if chosen is None else float(chosen(model))
            rows.append(
                {
                    "size": size,
                    "n_train": len(labels["train"]),
                    "model": name,
                    "fit_seconds": round(best, 3),
                    "test_accuracy": round(accuracy, 4),
                    "chosen_C": C,
                    "converged": converged,
                }
            )
    return {
        "feature_dim": int(features["train"].shape[1]),
        "n_test": len(labels["test"]),
        "svm_Cs": Cs,
        "rows": rows,
    }


def print_table(result: dict) -> None:
    print(
        f"(d) logreg/svm heads vs scikit-learn on the same lite0 features ({result['feature_dim']} dims), "
        f"test on {result['n_test']} images; svm C searched in {result['svm_Cs']} both ways"
    )
    print(
        f"{'size':>6} {'n_train':>7}  {'model':<31} {'fit s':>8} {'ratio':>6} {'test acc':>8} {'C':>7}  converged"
    )
    rows = result["rows"]
    for i, r in enumerate(rows):
        head = rows[i - 1] if r["model"].startswith("sklearn") else r  # each sklearn row follows its head's
        ratio = r["fit_seconds"] / max(head["fit_seconds"], 1e-9)
        chosen = "" if r["chosen_C"] is None else f"{r['chosen_C']:g}"
        print(
            f"{100 * r['size']:>5g}% {r['n_train']:>7}  {r['model']:<31} {r['fit_seconds']:>8.2f} {ratio:>5.2f}x "
            f"{r['test_accuracy']:>8.4f} {chosen:>7}  {'yes' if r['converged'] else 'no (max_iter reached)'}"
        )
    print("ratio: sklearn's fit time / the transferlab head's")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="0.01,0.1", help="training fractions")
    parser.add_argument("--svm-max-C", type=float, default=1e-2, help="largest C both svm sides search")
    parser.add_argument("--repeats", type=int, default=1, help="fits per model; the best time is reported")
    parser.add_argument("--quick", action="store_true", help="1 %% only, C up to 1e-3: checks the script")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    sizes, max_C = ("0.01", 1e-3) if args.quick else (args.sizes, args.svm_max_C)
    result = measure([float(s) for s in sizes.split(",")], args.repeats, max_C)
    print(json.dumps(result, indent=1)) if args.json else print_table(result)
    return result


if __name__ == "__main__":
    main()
