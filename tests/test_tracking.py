"""MLflow tracking against a real local MLflow file store: a study's runs, params, metrics and report."""

from __future__ import annotations

import csv
import json

import transferlab
from transferlab.api import study_toml
from transferlab.tracking import RUN_ID_TAG, client, log_run, track_study

GRID = {
    "name": "tracked",
    "base": {
        "dataset": "digits",
        "per_class": 5,
        "val_size": 0.2,
        "backbone": "shallow_cnn",
        "input_size": 16,
        "epochs": 2,
        "batch_size": 32,
        "seed": [0, 1],
    },
    "runs": [{"strategy": "scratch"}],
}


def test_study_is_logged_with_params_metrics_history_and_report(tmp_path):
    store = tmp_path / "mlruns"
    directory = tmp_path / "study"
    study = transferlab.study(GRID, directory, mlflow=store)  # with its report, logged as an artifact
    mlflow = client(store)
    experiment = mlflow.get_experiment_by_name("tracked")
    runs = mlflow.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    rows = {row["run_id"]: row for row in study.rows()}
    for child in children:
        row = rows[child.data.tags[RUN_ID_TAG]]
        assert child.data.params["strategy"] == "scratch" and child.data.params["backbone"] == "shallow_cnn"
        assert child.data.metrics["test_accuracy"] == row["test_accuracy"]
        history = mlflow.get_metric_history(child.info.run_id, "history.val_loss")
        assert [m.step for m in history] == [1, 2]  # one point per epoch
        assert child.info.status == "FINISHED"
    parent = parents[0]
    assert parent.data.metrics["runs_done"] == 2 and parent.data.params["study"] == "tracked"
    artifacts = {a.path for a in mlflow.list_artifacts(parent.info.run_id)}
    assert {"spec.toml", "runs.csv", "report"} <= artifacts
    assert "report/report.html" in {a.path for a in mlflow.list_artifacts(parent.info.run_id, "report")}
    table = mlflow.download_artifacts(parent.info.run_id, "runs.csv", str(tmp_path))
    with open(table, newline="") as f:
        assert sorted(r["run_id"] for r in csv.DictReader(f)) == sorted(rows)
    # logging again (a resumed study) adds nothing already there
    assert track_study(directory, store) == parent.info.run_id
    assert len(mlflow.search_runs([experiment.experiment_id])) == 3


def test_one_run_is_logged(tmp_path):
    result = transferlab.run(
        "digits", "scratch", per_class=5, backbone="shallow_cnn", input_size=16, epochs=1
    )
    run_id = log_run(result, tmp_path / "mlruns", experiment="single")
    logged = client(tmp_path / "mlruns").get_run(run_id)
    assert logged.data.metrics["test_accuracy"] == result.test_accuracy
    assert logged.data.params["per_class"] == "5" and logged.data.tags["transferlab.status"] == "ok"


def test_cli_study_flag(tmp_path, cli):
    spec = tmp_path / "tracked.toml"
    spec.write_text(study_toml({**GRID, "base": {**GRID["base"], "seed": 0}}))
    code, out, err = cli(
        "study",
        str(spec),
        "--dir",
        str(tmp_path / "d"),
        "--no-report",
        "--quiet",
        "--json",
        "--mlflow",
        str(tmp_path / "mlruns"),
        "--mlflow-experiment",
        "cli",
    )
    assert code == 0, err
    run_id = json.loads(out)["mlflow_run_id"]
    assert client(tmp_path / "mlruns").get_run(run_id).data.params["study"] == "tracked"
