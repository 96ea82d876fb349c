"""Two `transferlab study` processes on one directory at once: the runs are shared out (each run once),
the results equal one uninterrupted study, nobody sees "database is locked", and the report left on disk
holds every run (report writers take turns and read the store under the lock)."""

from __future__ import annotations

import csv
import json
import subprocess

from transferlab.study.store import Store

from .conftest import RUNS, fresh_env, results, study_command


def cache_checksums(cache) -> dict[str, str]:
    """cache entry -> sha256 of its feature array, as recorded beside it."""
    return {p.stem: json.loads(p.read_text())["sha256"] for p in (cache / "features").glob("??/*.json")}


def test_two_processes_on_one_directory_share_the_runs(
    reference, reference_study, private_cache, spec_file, tmp_path
):
    directory = tmp_path / "study"
    command, env = study_command(spec_file, directory, "--json"), fresh_env(tmp_path / "cache")
    procs = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    for proc, (_, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert "locked" not in err and "Traceback" not in err
    summaries = [json.loads(out) for out, _ in outputs]
    assert sum(s["ran_now"] for s in summaries) == RUNS  # each run executed by exactly one of them
    assert results(directory) == reference
    with Store(directory) as store:
        assert {run["attempts"] for run in store.runs()} == {1}
        histories = {run["run_id"]: store.history(run["run_id"]) for run in store.runs()}
    with Store(reference_study) as store:
        assert histories == {run["run_id"]: store.history(run["run_id"]) for run in store.runs()}
    # the features both processes extracted (cold cache) are bit-identical to the reference's
    fresh, shared = cache_checksums(tmp_path / "cache"), cache_checksums(private_cache)
    assert fresh and all(shared[key] == checksum for key, checksum in fresh.items())
    with open(directory / "report" / "runs.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == RUNS and {row["status"] for row in rows} == {"done"}
