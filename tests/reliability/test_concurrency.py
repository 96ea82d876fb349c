"""Two `transferlab study` processes on one directory at once: the runs are shared out (each run once),
the results equal one uninterrupted study, nobody sees "database is locked", and the report left on disk
holds every run (report writers take turns and read the store under the lock)."""

from __future__ import annotations

import csv
import json
import subprocess

from transferlab.study.store import Store

from .conftest import RUNS, fresh_env, results, study_command


def test_two_processes_on_one_directory_share_the_runs(reference, spec_file, tmp_path):
    directory = tmp_path / "study"
    command, env = study_command(spec_file, directory, "--json"), fresh_env(tmp_path / "cache")
    procs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["ran_now"] for s in summaries) == RUNS  # each run executed by exactly one of them
    assert results(directory) == reference
    with Store(directory) as store:
        assert {run["attempts"] for run in store.runs()} == {1}
    with open(directory / "report" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == RUNS and {row["status"] for row in rows} == {"done"}
