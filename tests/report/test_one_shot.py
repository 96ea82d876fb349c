"""Siamese runs in a study: their extra metrics (CI, chance, 1-NN baselines) survive the store, the
export (one column each) and the aggregation (mean over repeats); the report draws one-shot accuracy vs
N and vs training pairs in a task of its own."""

from __future__ import annotations

import csv

from transferlab.report import write_report
from transferlab.report.aggregate import load_study
from transferlab.study.export import export_table

from .conftest import SPEC_DEFAULTS

SIAMESE = {
    **SPEC_DEFAULTS,
    "strategy": "siamese",
    "backbone": "efficientnet_lite0.in1k",
    "head": "l1",
    "weight_decay": 1e-4,
    "size": None,
    "per_class": 300,
    "source": "0,1,2",
    "target": "3,4,5,6",
    "pool": "avg",
    "source_dataset": None,
    "tasks": 320,
    "hidden": 1024,
    "patience": 10,
}


def _metrics(accuracy: float, n_way: int, pixels: float) -> dict:
    return {
        "one_shot_accuracy": accuracy,
        "one_shot_ci_low": accuracy - 0.05,
        "one_shot_ci_high": accuracy + 0.05,
        "chance": 1 / n_way,
        "n_way": n_way,
        "tasks": 320,
        "nn_pixels_accuracy": pixels,
        "nn_features_accuracy": pixels + 0.01,
    }


def _add_grid(builder) -> None:
    """N in {2, 4} x pairs in {200, 2000} x 2 seeds; accuracy = 1.5 / N + 0.05 per decade of pairs."""
    for n_way in (2, 4):
        for pairs in (200, 2000):
            for seed in (0, 1):
                accuracy = 1.5 / n_way + (0.05 if pairs == 2000 else 0.0) + 0.01 * seed
                spec = {**SIAMESE, "n_way": n_way, "pairs": pairs, "seed": seed}
                builder.add(
                    spec,
                    test=accuracy,
                    val=0.9 + pairs / 1e5,
                    n_train=900,
                    n_classes=n_way,
                    metrics=_metrics(accuracy, n_way, 1.2 / n_way + 0.001 * seed),
                )
    other = {**SIAMESE, "source_dataset": "mnist", "source": None, "n_way": 4, "pairs": 2000}
    builder.add(other, test=0.3, val=0.8, n_train=3000, n_classes=4, metrics=_metrics(0.3, 4, 0.35))


def test_metrics_survive_store_aggregation_and_export(builder):
    _add_grid(builder)
    study = load_study(builder.store)
    labels = [task.label for task in study.tasks]
    assert labels == [
        "fashion-mnist, one-shot on classes 3,4,5,6, trained on classes 0,1,2",
        "fashion-mnist, one-shot on classes 3,4,5,6, trained on mnist",
    ]
    cell = next(c for c in study.tasks[0].cells if c.n_classes == 4 and c.config.get("pairs") == 2000)
    assert cell.config.role == "transfer" and cell.test.n == 2
    assert abs(cell.metrics["nn_pixels_accuracy"].mean - (0.3 + 0.0005)) < 1e-12
    assert cell.metrics["nn_pixels_accuracy"].n == 2 and cell.metrics["chance"].mean == 0.25
    with open(export_table(builder.store.directory), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 9 and "metrics" not in rows[0]
    assert float(rows[0]["metrics.one_shot_ci_low"]) == float(rows[0]["test_accuracy"]) - 0.05
    assert float(rows[0]["metrics.chance"]) == 0.5 and rows[0]["n_way"] == "2" and rows[0]["pairs"] == "200"


def test_report_draws_one_shot_accuracy_vs_n_and_pairs(builder):
    _add_grid(builder)
    folder = write_report(builder.store.directory).parent
    one_shot = sorted(p.name for p in folder.glob("one_shot_*.png"))
    assert len(one_shot) == 2 and (folder / one_shot[0].replace(".png", ".pdf")).is_file()
    page = (folder / "report.html").read_text()
    assert "one-shot accuracy vs N and training pairs" in page and "1-nearest-neighbour baselines" in page
    summary = (folder / "summary.md").read_text()
    assert "one-shot on classes 3,4,5,6, trained on classes 0,1,2" in summary


def test_report_puts_every_method_side_by_side(builder):
    """The few_shot_methods table: one block per protocol (N = 2 and 4, and the cross-dataset one), the configuration
    chosen on validation, 1-NN baselines beside it; 5-shot and SimpleShot cells are '-' for runs stored
    before they were recorded."""
    _add_grid(builder)
    folder = write_report(builder.store.directory).parent
    with open(folder / "few_shot_methods.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    protocols = {row["protocol"] for row in rows}
    assert len(protocols) == 3  # n_way 2 and 4 on fashion-mnist 0,1,2 -> 3,4,5,6; and mnist -> fashion-mnist
    chosen = next(r for r in rows if "n_way=4" in r["protocol"] and "source_dataset" not in r["protocol"])
    assert "pairs=2000" in chosen["siamese_config"] and "best of 2" in chosen["siamese_config"]
    methods = [r["method"] for r in rows if r["protocol"] == chosen["protocol"]]
    assert methods == ["Siamese (chosen on validation)", "1-NN, raw pixels (Koch)", "1-NN, features"]
    assert all(r["five_shot_accuracy"] == "" for r in rows)
    assert "few_shot_methods" in (folder / "report.html").read_text()
