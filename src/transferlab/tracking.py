"""Optional MLflow tracking: a study, or one run, logged to an MLflow tracking store.

``track_study(DIR, URI)`` logs a study directory: one parent MLflow run per study (params: name, grid
hash, run count; metrics: done/failed counts; artifacts: spec.toml, the long table runs.csv and the HTML
report folder) and one child run per finished or failed transferlab run (params: its resolved spec;
metrics: accuracies, losses, counts, timings, the strategy's own metrics, and the per-epoch history as
stepped ``history.*`` metrics; tags: the transferlab run id, status, error, code version). It is
idempotent: logging the same study again adds only the runs not logged yet (matched by the run id tag),
so it can follow a resumed study. ``log_run(result, URI)`` logs one RunResult the same way.

URI: any MLflow tracking URI, or a folder (a local file store; MLflow 3 keeps the file store behind
``MLFLOW_ALLOW_FILE_STORE``, which a folder or ``file:`` URI sets, since naming one is the opt-in).
Needs ``mlflow-skinny`` (``pip install transferlab[mlflow]``); nothing else in transferlab imports MLflow.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError

FILE_STORE_ENV = "MLFLOW_ALLOW_FILE_STORE"
RESULT_METRICS = (
    "test_accuracy",
    "test_loss",
    "val_accuracy",
    "val_loss",
    "train_accuracy",
    "n_train",
    "n_val",
    "n_test",
    "n_classes",
    "epochs_run",
    "best_epoch",
    "fit_seconds",
    "features_seconds",
    "source_seconds",
    "eval_seconds",
    "total_seconds",
)
RUN_ID_TAG, STUDY_TAG = "transferlab.run_id", "transferlab.grid_hash"
PARAM_LIMIT = 6000  # MLflow's longest param value (characters)
BATCH = 500  # metrics per log_batch call (MLflow takes at most 1,000)


def client(tracking_uri: str | os.PathLike):
    """An MlflowClient for ``tracking_uri`` (a URI, or a folder for a local file store)."""
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise TransferlabError(
            "MLflow tracking needs mlflow: `pip install transferlab[mlflow]` (mlflow-skinny)"
        ) from None
    uri = str(tracking_uri)
    if "://" not in uri and not uri.startswith("file:"):
        uri = Path(uri).expanduser().absolute().as_uri()
    if uri.startswith("file:"):
        os.environ.setdefault(FILE_STORE_ENV, "true")
    return MlflowClient(tracking_uri=uri)


def _experiment(mlflow_client, name: str) -> str:
    found = mlflow_client.get_experiment_by_name(name)
    return found.experiment_id if found is not None else mlflow_client.create_experiment(name)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _log(mlflow_client, run_id: str, params: dict[str, Any], metrics: list[tuple[str, float, int]]) -> None:
    from mlflow.entities import Metric, Param

    stamp = int(time.time() * 1000)
    items = [Param(k, str(v)[:PARAM_LIMIT]) for k, v in params.items() if v is not None]
    for start in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
        mlflow_client.log_batch(run_id, params=items[start : start + 100])
    values = [Metric(k, float(v), stamp, step) for k, v, step in metrics]
    for start in range(0, len(values), BATCH):
        mlflow_client.log_batch(run_id, metrics=values[start : start + BATCH])


def _run_metrics(result: dict, history: list[dict]) -> list[tuple[str, float, int]]:
    out = [(k, result[k], 0) for k in RESULT_METRICS if _number(result.get(k))]
    out += [(f"metrics.{k}", v, 0) for k, v in (result.get("metrics") or {}).items() if _number(v)]
    for i, epoch in enumerate(history):
        step = int(epoch.get("epoch", i + 1) or i + 1)
        out += [(f"history.{k}", v, step) for k, v in epoch.items() if k != "epoch" and _number(v)]
    return out


def _log_one(
    mlflow_client,
    experiment_id: str,
    run_key: str,
    spec: dict,
    status: str,
    result: dict | None,
    error: str | None,
    history: list[dict],
    parent: str | None,
) -> str:
    tags = {RUN_ID_TAG: run_key, "transferlab.status": status}
    if parent:
        tags["mlflow.parentRunId"] = parent
    if error:
        tags["transferlab.error"] = error[:PARAM_LIMIT]
    if result and result.get("code_version"):
        tags["transferlab.code_version"] = str(result["code_version"])
    name = f"{spec.get('strategy')} {spec.get('backbone')} {(result or {}).get('size_label', '')} seed={spec.get('seed')}"
    run = mlflow_client.create_run(experiment_id, run_name=name.strip(), tags=tags)
    _log(mlflow_client, run.info.run_id, spec, _run_metrics(result or {}, history))
    mlflow_client.set_terminated(run.info.run_id, "FINISHED" if status in ("ok", "done") else "FAILED")
    return run.info.run_id


def log_run(result, tracking_uri: str | os.PathLike, experiment: str = "transferlab") -> str:
    """Log one RunResult (or its dict) to ``tracking_uri`` under ``experiment``; returns the MLflow run id."""
    from transferlab.study.spec import run_id

    r = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    mlflow_client = client(tracking_uri)
    from transferlab.runs import RunSpec

    key = run_id(RunSpec.from_dict(r["spec"]))
    return _log_one(
        mlflow_client,
        _experiment(mlflow_client, experiment),
        key,
        r["spec"],
        r.get("status", "ok"),
        r,
        r.get("error"),
        r.get("history") or [],
        None,
    )


def track_study(
    directory: str | os.PathLike, tracking_uri: str | os.PathLike, experiment: str | None = None
) -> str:
    """Log the study in ``directory`` (its finished and failed runs, spec, table and report) to
    ``tracking_uri`` under ``experiment`` (default: the study's name); returns the parent run's id."""
    from transferlab.study.export import long_table, open_study, write_csv

    directory = Path(directory)
    with open_study(directory) as store:
        name, grid_hash = store.get_meta("name") or directory.name, store.get_meta("grid_hash") or ""
        runs = [r for r in store.runs() if r["status"] in ("done", "failed")]
        histories = {r["run_id"]: store.history(r["run_id"]) for r in runs}
        counts = store.counts()
        columns, rows = long_table(store)
    mlflow_client = client(tracking_uri)
    experiment_id = _experiment(mlflow_client, experiment or name)
    found = mlflow_client.search_runs([experiment_id], filter_string=f"tags.`{STUDY_TAG}` = '{grid_hash}'")
    if found:
        parent = found[0].info.run_id
    else:
        parent = mlflow_client.create_run(
            experiment_id, run_name=name, tags={STUDY_TAG: grid_hash}
        ).info.run_id
        _log(
            mlflow_client,
            parent,
            {
                "study": name,
                "grid_hash": grid_hash,
                "runs": sum(counts.values()),
                "directory": str(directory.absolute()),
            },
            [],
        )
    logged = {
        r.data.tags.get(RUN_ID_TAG)
        for r in mlflow_client.search_runs(
            [experiment_id], filter_string=f"tags.`mlflow.parentRunId` = '{parent}'", max_results=50_000
        )
    }
    for run in runs:
        if run["run_id"] not in logged:
            _log_one(
                mlflow_client,
                experiment_id,
                run["run_id"],
                run["spec"],
                run["status"],
                run["result"],
                run["error"],
                histories[run["run_id"]],
                parent,
            )
    stamp_metrics = [("runs_done", counts.get("done", 0), 0), ("runs_failed", counts.get("failed", 0), 0)]
    _log(mlflow_client, parent, {}, stamp_metrics)
    if (directory / "spec.toml").is_file():
        mlflow_client.log_artifact(parent, str(directory / "spec.toml"))
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "runs.csv"
        write_csv(columns, rows, table)
        mlflow_client.log_artifact(parent, str(table))
    if (directory / "report").is_dir():
        mlflow_client.log_artifacts(parent, str(directory / "report"), "report")
    mlflow_client.set_terminated(parent, "FINISHED" if not counts.get("failed") else "FAILED")
    return parent
