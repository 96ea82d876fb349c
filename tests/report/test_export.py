"""`transferlab export`: the long table as CSV (and Parquet when pyarrow is installed), bad input."""

from __future__ import annotations

import builtins
import csv
import json

import pytest

from transferlab.cli import main
from transferlab.errors import TransferlabError
from transferlab.study.export import export_table

from .conftest import spec


@pytest.fixture
def study(builder):
    builder.add(spec(size=0.1, lr=1e-3), test=0.75, val=0.7, n_train=5400, n_classes=10)
    builder.fail(spec(size=0.1, seed=1), "NaN loss, at epoch 3")
    builder.pending(spec(size=0.01))
    return builder.store.directory


def test_csv_has_one_row_per_run_with_spec_status_and_metrics(study):
    path = export_table(study)
    assert path == study / "runs.csv"
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["status"] for r in rows] == ["done", "failed", "pending"]
    done, failed, pending = rows
    assert float(done["test_accuracy"]) == 0.75 and float(done["lr"]) == 1e-3 and done["seed"] == "0"
    assert json.loads(done["hyperparameters"]) == {"note": "synthetic"}
    assert "spec" not in rows[0]  # the result's copy of the spec is not a column
    assert failed["error"] == "NaN loss, at epoch 3" and failed["test_accuracy"] == ""
    assert pending["size"] == "0.01"


def test_output_path_and_format_errors(study, tmp_path):
    target = tmp_path / "out.csv"
    assert export_table(study, "csv", target) == target and target.is_file()
    with pytest.raises(TransferlabError, match="unknown.*valid: csv, parquet"):
        export_table(study, "xlsx")
    with pytest.raises(TransferlabError, match="does not exist"):
        export_table(study, "csv", tmp_path / "no" / "such" / "dir.csv")
    with pytest.raises(TransferlabError, match="does not exist"):
        export_table(tmp_path / "missing")


def test_parquet_without_pyarrow_names_the_install(study, monkeypatch):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(TransferlabError, match="pip install pyarrow"):
        export_table(study, "parquet")


def test_parquet_round_trip(study):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install pyarrow)")
    table = pq.read_table(export_table(study, "parquet")).to_pylist()
    assert [r["status"] for r in table] == ["done", "failed", "pending"]
    assert table[0]["test_accuracy"] == 0.75 and table[1]["test_accuracy"] is None
    assert table[0]["seed"] == 0 and isinstance(table[0]["lr"], float)


def test_cli_export(capsys, study, tmp_path):
    assert main(["export", str(study), "--format", "csv", "-o", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").is_file() and "t.csv" in capsys.readouterr().out
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(study), "--format", "json"])
    assert exit_info.value.code == 2 and "invalid choice" in capsys.readouterr().err
