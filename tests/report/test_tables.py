"""Tables 3-5 of the VGG16 study, from a store with known numbers: the CSV values, the LaTeX text, and the
configuration chosen on validation even where another has the better test accuracy."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from scipy import stats

from transferlab.report import write_report

from .conftest import spec

SEEDS = (0, 1, 2)
SCRATCH = {0.01: [0.50, 0.52, 0.48], 1.0: [0.51, 0.50, 0.52]}
AUGMENT = {0.01: [0.76, 0.75, 0.77], 1.0: [0.76, 0.77, 0.75]}
TRANSFER = {0.01: [0.75, 0.74, 0.76], 1.0: [0.78, 0.79, 0.77]}
N_TRAIN = {0.01: 420, 1.0: 42_000}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from .conftest import StudyBuilder

    directory = tmp_path_factory.mktemp("tables") / "study"
    b = StudyBuilder(directory)
    for size in (0.01, 1.0):
        for i, seed in enumerate(SEEDS):
            common = {"size": size, "seed": seed}
            b.add(
                spec(strategy="scratch", **common),
                SCRATCH[size][i],
                SCRATCH[size][i] + 0.01,
                N_TRAIN[size],
                7,
            )
            b.add(
                spec(strategy="augment", augment="mirror,noise", **common),
                AUGMENT[size][i],
                AUGMENT[size][i],
                N_TRAIN[size],
                7,
            )
            extract = {
                "strategy": "extract",
                "backbone": "vgg16.tv_in1k",
                "activation": "sigmoid",
                "init": "uniform",
            }
            b.add(spec(head="fc2", lr=1e-3, **extract, **common), TRANSFER[size][i], 0.80, N_TRAIN[size], 7)
            # the decoy: the best test accuracy, the worst validation accuracy; it must never be chosen
            b.add(spec(head="fc1", lr=1e-2, **extract, **common), 0.99, 0.30, N_TRAIN[size], 7)
    b.close()
    folder = write_report(directory).parent
    return folder


def _rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_gains_csv_has_ratio_and_difference_against_both(report):
    rows = {r["size"]: r for r in _rows(report / "gains.csv")}
    assert set(rows) == {"1%", "100%"}
    for size, label in ((0.01, "1%"), (1.0, "100%")):
        row = rows[label]
        t, b, a = np.mean(TRANSFER[size]), np.mean(SCRATCH[size]), np.mean(AUGMENT[size])
        assert float(row["rg_vs_baseline"]) == pytest.approx(t / b)
        assert float(row["rg_vs_augmentation"]) == pytest.approx(t / a)
        assert float(row["ag_vs_baseline"]) == pytest.approx(t - b)
        assert float(row["ag_vs_augmentation"]) == pytest.approx(t - a)
        welch = stats.ttest_ind(TRANSFER[size], SCRATCH[size], equal_var=False).confidence_interval(0.95)
        assert float(row["ag_vs_baseline_ci_half"]) == pytest.approx((welch.high - welch.low) / 2)
        assert float(row["transfer_test_mean"]) == pytest.approx(t)  # the decoy (0.99) was not chosen
        assert "head=fc2" in row["transfer_configuration"]
        assert float(row["ag_vs_baseline_val"]) == pytest.approx(0.80 - np.mean(SCRATCH[size]) - 0.01)
        assert int(row["n_train"]) == N_TRAIN[size] and row["task"] == "fashion-mnist"


def test_accuracy_by_role_reports_mean_std_ci_n(report):
    row = next(r for r in _rows(report / "accuracy_by_role.csv") if r["size"] == "1%")
    values = SCRATCH[0.01]
    assert float(row["baseline_test_mean"]) == pytest.approx(np.mean(values))
    assert float(row["baseline_test_std"]) == pytest.approx(np.std(values, ddof=1))
    assert int(row["baseline_test_n"]) == 3
    low, high = stats.t.interval(0.95, 2, loc=np.mean(values), scale=stats.sem(values))
    assert (float(row["baseline_test_ci_low"]), float(row["baseline_test_ci_high"])) == (
        pytest.approx(low),
        pytest.approx(high),
    )


def test_best_configs_choose_on_validation(report):
    rows = _rows(report / "best_configs.csv")
    extract = [r for r in rows if r["strategy"] == "extract"]
    assert len(extract) == 2 and all("head=fc2" in r["configuration"] for r in extract)
    best = {r["size"]: r for r in rows if r["best_at_size"] == "True"}
    assert "head=fc2" in best["1%"]["configuration"]  # val 0.80 beats augmentation's ~0.76
    assert float(best["1%"]["val_mean"]) == pytest.approx(0.80)
    assert float(best["1%"]["test_mean"]) == pytest.approx(np.mean(TRANSFER[0.01]))


def test_latex_tables_are_escaped_booktabs(report):
    gains = (report / "gains.tex").read_text()
    assert "\\begin{tabular}" in gains and "\\toprule" in gains and "\\bottomrule" in gains
    assert "1\\%" in gains and "100\\%" in gains  # '%' escaped
    t, b = np.mean(TRANSFER[0.01]), np.mean(SCRATCH[0.01])
    assert f"{t / b:.2f}" in gains and f"{t - b:+.3f}" in gains
    accuracy = (report / "accuracy_by_role.tex").read_text()
    assert f"{np.mean(TRANSFER[0.01]):.3f} $\\pm$ {np.std(TRANSFER[0.01], ddof=1):.3f} (n=3)" in accuracy
    best = (report / "best_configs.tex").read_text()
    assert "fashion-mnist" in best and "head=fc2" in best and "0.99" not in best
    assert "_" not in best.replace("\\_", "")  # every underscore escaped


def test_aggregates_and_runs_csv_cover_every_run(report):
    aggregates = _rows(report / "aggregates.csv")
    assert len(aggregates) == 8  # 4 configurations x 2 sizes
    assert all(r["test_n"] == "3" for r in aggregates)
    runs = _rows(report / "runs.csv")
    assert len(runs) == 24 and {r["status"] for r in runs} == {"done"}
    assert "hyperparameters" in runs[0] and runs[0]["hyperparameters"].startswith("{")
