"""report.few_shot: the Siamese configuration is chosen on validation (never test), every method's cell
pools the chosen repeats' tasks into one Wilson interval, and the recommendation reads validation only."""

from __future__ import annotations

import pytest

from transferlab.report.few_shot import markdown, method_table, pooled
from transferlab.siamese import wilson_interval

BASELINES = ("nn_pixels", "nn_features", "protonet", "simpleshot")


def _run(seed: int, lr: float, val: float, test: float, status: str = "done") -> dict:
    metrics = {
        "tasks": 100,
        "one_shot_accuracy": test,
        "siamese_5shot_accuracy": test + 0.1,
        "val_one_shot_accuracy": val,
        "one_shot_before_refit_accuracy": test - 0.05,
    }
    for i, name in enumerate(BASELINES):
        metrics |= {
            f"{name}_accuracy": 0.4 + 0.01 * i,
            f"{name}_5shot_accuracy": 0.5 + 0.01 * i,
            f"val_{name}_accuracy": 0.6 + 0.05 * i,
        }
    spec = {
        "strategy": "siamese",
        "dataset": "fashion-mnist",
        "source": "0,1",
        "target": "3,4",
        "n_way": 2,
        "lr": lr,
        "head": "l1",
        "seed": seed,
    }
    return {"status": status, "result": {"spec": spec, "val_accuracy": val, "metrics": metrics}}


def test_the_configuration_is_chosen_on_validation_and_tasks_are_pooled():
    # lr 1e-3 has the better validation (0.8 vs 0.7) but the worse test: the table must show it anyway.
    runs = [
        _run(0, 1e-3, 0.8, 0.50),
        _run(1, 1e-3, 0.8, 0.60),
        _run(0, 3e-4, 0.7, 0.90),
        _run(1, 3e-4, 0.7, 0.90),
        _run(2, 3e-4, 0.99, 0.99, status="failed"),
    ]
    rows = method_table(runs)
    assert [r["method"].split(" ")[0] for r in rows] == [
        "Siamese",
        "Siamese",
        "1-NN,",
        "1-NN,",
        "nearest",
        "SimpleShot,",
    ]
    siamese = rows[0]
    assert "lr=0.001" in siamese["chosen"] and "best of 2" in siamese["chosen"]
    score = siamese["one_shot"]
    assert (score.correct, score.n, score.repeats) == (110, 200, 2) and score.accuracy == 0.55
    assert (score.low, score.high) == wilson_interval(110, 200) and score.std == pytest.approx(
        0.0707, abs=1e-3
    )
    assert siamese["five_shot"].correct == 130 and rows[1]["five_shot"] is None  # before refit: one-shot only
    # Validation: Siamese 0.8 [0.74, 0.85] does not clear SimpleShot's 0.75 [0.69, 0.81] (the best of the
    # training-free methods), so SimpleShot is recommended.
    assert [r["recommended"] for r in rows] == [False, False, False, False, False, True]
    text = markdown(rows)
    assert "0.550 [" in text and "(recommended on validation)" in text and "best of 2 on validation" in text


def test_the_siamese_network_is_recommended_only_when_it_clearly_wins_on_validation():
    rows = method_table([_run(0, 1e-3, 0.92, 0.5), _run(1, 1e-3, 0.92, 0.6)])  # [0.875, 0.95] vs <= 0.805
    assert [r["recommended"] for r in rows] == [True, False, False, False, False, False]


def test_a_metric_missing_from_any_repeat_gives_no_cell():
    runs = [_run(0, 1e-3, 0.8, 0.5), _run(1, 1e-3, 0.8, 0.6)]
    del runs[1]["result"]["metrics"]["simpleshot_5shot_accuracy"]
    assert pooled([r["result"] for r in runs], "simpleshot_5shot") is None
    assert pooled([r["result"] for r in runs], "simpleshot").n == 200


def test_the_report_table_flattens_every_cell_and_renders_intervals():
    from transferlab.report.few_shot import tables

    assert tables([]) == []
    (table,) = tables([_run(0, 1e-3, 0.8, 0.5), _run(1, 1e-3, 0.8, 0.6)])
    first = table.rows[0]
    assert (
        table.name == "few_shot_methods"
        and len(table.rows) == 6
        and table.rows[5]["recommended_on_validation"]
    )
    assert (first["one_shot_tasks"], first["five_shot_tasks"], first["repeats"]) == (200, 200, 2)
    assert (
        table.rows[1]["five_shot_accuracy"] is None
        and "0.550 [" in table.html()
        and "(recommended)" in table.html()
    )


def test_the_feature_layer_is_a_choice_on_validation_not_a_protocol():
    top, low = _run(0, 1e-3, 0.6, 0.5), _run(0, 1e-3, 0.7, 0.4)
    top["result"]["spec"]["layer"], low["result"]["spec"]["layer"] = "head", "5"
    rows = method_table([top, low])
    assert (
        len({r["protocol"] for r in rows}) == 1
        and "layer=5" in rows[0]["chosen"]
        and "best of 2" in rows[0]["chosen"]
    )
    assert rows[0]["one_shot"].accuracy == 0.4  # the validation winner's test accuracy, not the better test
