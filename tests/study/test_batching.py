"""The study engine trains extract runs whose fc/gap heads share cached features in one batched pass, and
records each run as its single run would: same fields, data, epochs; accuracies within float32 rounding."""

from __future__ import annotations

import pytest

from transferlab.models.registry import get_backbone_entry
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies import run
from transferlab.study.executors import LocalPoolExecutor, group_runs
from transferlab.study.runner import run_study
from transferlab.study.store import Store

LITE0 = "efficientnet_lite0.in1k"
pytestmark = pytest.mark.skipif(
    not get_backbone_entry(LITE0).weights_present(), reason=f"{LITE0} weights are not installed"
)

SPEC = """
name = "heads"
description = "digits: a small head grid on lite0 features, trained in batched passes"

[base]
dataset = "digits"
size = [0.5, 1.0]
val_size = 0.2
test_per_class = 30
epochs = 4

[[runs]]
strategy = "extract"
backbone = "efficientnet_lite0.in1k"
input_size = 32
head = ["fc1", "fc2"]
activation = ["sigmoid", "elu"]
lr = [1e-2, 1e-3]

[[runs]]
strategy = "extract"
backbone = "efficientnet_lite0.in1k"
input_size = 32
head = "logreg"
"""


def test_a_study_batches_head_runs_and_records_each_as_its_single_run(digits, tmp_path):
    (tmp_path / "spec.toml").write_text(SPEC)
    outcome = run_study(tmp_path / "spec.toml", tmp_path / "s", threads=1, quiet=True, report=False)
    assert (outcome.total, outcome.done, outcome.failed) == (18, 18, 0)
    with Store(tmp_path / "s") as store:
        rows = store.runs()
        assert store.claimable() == [] and {r["attempts"] for r in rows} == {1}
        histories = {r["run_id"]: store.history(r["run_id"]) for r in rows}
    batched = [r for r in rows if r["spec"]["head"] != "logreg"]
    assert {r["result"]["hyperparameters"]["batched_with"] for r in batched} == {8}  # one pass per size
    logreg = [r["result"]["hyperparameters"] for r in rows if r["spec"]["head"] == "logreg"]
    assert len(logreg) == 2 and all("batched_with" not in h for h in logreg)
    for row in batched[::5]:  # a sample of the grid, each against its single run
        single = run(RunSpec.from_dict(row["spec"]), digits).to_dict()
        result = row["result"]
        assert set(result) == set(single) - {"history"}
        for name in (
            "n_train",
            "n_val",
            "n_test",
            "n_classes",
            "size_label",
            "indices_hash",
            "epochs_run",
            "best_epoch",
        ):
            assert result[name] == single[name], name
        assert result["test_accuracy"] == pytest.approx(single["test_accuracy"], abs=0.02)
        assert [h["val_loss"] for h in histories[row["run_id"]]] == pytest.approx(
            [h["val_loss"] for h in single["history"]], rel=1e-3
        )


def test_grouping_and_failures_stay_per_run_in_a_worker_process(digits):
    base = {
        "strategy": "extract",
        "dataset": "digits",
        "input_size": 32,
        "size": 0.5,
        "val_size": 0.2,
        "test_per_class": 30,
        "epochs": 3,
        "optimizer": "sgd",
    }
    specs = [
        RunSpec(**base, head="fc1", lr=1e9),
        RunSpec(**base, head="fc2", lr=1e-2),
        RunSpec(**base, head="logreg"),
        RunSpec(**base, head="fc1", dropout=0.2),
    ]
    units = group_runs([(str(i), s.resolved().to_dict()) for i, s in enumerate(specs)])
    assert [[rid for rid, _ in unit] for unit in units] == [["0", "1"], ["2"], ["3"]]
    pool = LocalPoolExecutor(1, threads=1)  # a worker process: the batch and its results cross processes
    try:
        results = pool.submit_batch([s.resolved().to_dict() for s in specs]).result(timeout=300)
    finally:
        pool.shutdown()
    diverged, healthy, logreg, alone = (RunResult.from_dict(r) for r in results)
    single = run(specs[0], digits)
    assert diverged.status == "failed" and diverged.error == single.error
    assert "loss became nan" in diverged.error
    assert healthy.ok and healthy.hyperparameters["batched_with"] == 2 and healthy.code_version
    assert logreg.ok and alone.ok and "batched_with" not in alone.hyperparameters
