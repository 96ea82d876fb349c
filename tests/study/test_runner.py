"""Studies end to end on real data (digits, tiny CNN): resume after SIGKILL, no duplicates, executors agree."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from transferlab.errors import TransferlabError
from transferlab.study.runner import run_study
from transferlab.study.store import Store

SPEC = """
name = "tiny"
description = "digits: a shallow CNN from scratch vs logistic regression on ImageNet lite0 features"
repeats = 2

[base]
dataset = "digits"
size = [0.3, 1.0]
val_size = 0.2
epochs = 3
batch_size = 32

[[runs]]
strategy = "scratch"
backbone = "shallow_cnn"
input_size = 16

[[runs]]
strategy = "extract"
backbone = "efficientnet_lite0.in1k"
input_size = 32
head = "logreg"
"""


def metrics(directory) -> dict:
    """run_id -> (status, every stored number of its result but the timings, its per-epoch history)."""
    with Store(directory) as store:
        return {
            r["run_id"]: (
                r["status"],
                {k: v for k, v in r["result"].items() if not k.endswith("_seconds")},
                store.history(r["run_id"]),
            )
            for r in store.runs()
            if r["result"]
        }


def study_command(tmp_path) -> list[str]:
    """The CLI command that runs SPEC in tmp_path/s with one thread per run (as the reference)."""
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    return [
        sys.executable,
        "-m",
        "transferlab.cli",
        "study",
        str(spec),
        "--dir",
        str(tmp_path / "s"),
        "--quiet",
        "--no-report",
        "--threads",
        "1",
    ]


def wait_for_first_run(proc: subprocess.Popen) -> None:
    """Read the study's --quiet lines until the first finished run is reported."""
    for line in proc.stderr:
        if line.startswith("[1/"):
            return


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted study, run once in this process."""
    root = tmp_path_factory.mktemp("ref")
    (root / "spec.toml").write_text(SPEC)
    # one torch thread per run everywhere: results are bit-identical for equal thread counts (CPU reductions
    # split by thread), and --workers 2 / Ray default to one thread per run on two cores
    outcome = run_study(root / "spec.toml", root / "study", threads=1, quiet=True, report=False)
    return root, outcome


def test_study_runs_everything_above_chance(reference):
    root, outcome = reference
    assert (outcome.total, outcome.done, outcome.failed) == (8, 8, 0)
    with Store(root / "study") as store:
        rows = store.table()
        assert store.get_meta("name") == "tiny" and (root / "study" / "spec.toml").read_text() == SPEC
    assert all(r["test_accuracy"] > 0.3 for r in rows)  # 10 classes: chance is 0.1
    assert {r["strategy"] for r in rows} == {"scratch", "extract"}
    assert all(r["hyperparameters"]["torch_threads"] == 1 for r in rows)  # recorded with every result


def test_rerun_does_nothing_and_changed_spec_is_refused(reference, tmp_path):
    root, _ = reference
    before = metrics(root / "study")
    again = run_study(root / "spec.toml", root / "study", threads=1, quiet=True, report=False)
    assert again.ran == 0 and metrics(root / "study") == before
    changed = tmp_path / "changed.toml"
    changed.write_text(SPEC.replace("repeats = 2", "repeats = 3"))
    with pytest.raises(TransferlabError, match=r"different grid \(4 runs would be added, 0 dropped\)"):
        run_study(changed, root / "study", quiet=True, report=False)
    assert metrics(root / "study") == before  # nothing harmed


def test_sigkill_then_resume_gives_the_same_results(reference, tmp_path):
    root, _ = reference
    cmd = study_command(tmp_path)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for_first_run(proc)  # kill as soon as the first run is recorded: the study is then half-way
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    with Store(tmp_path / "s") as store:
        partial = store.counts()
    assert 1 <= partial["done"] < 8
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert metrics(tmp_path / "s") == metrics(root / "study")  # same runs, bit-identical metrics


def test_two_workers_match_one(reference, tmp_path):
    root, _ = reference
    (tmp_path / "spec.toml").write_text(SPEC)
    run_study(tmp_path / "spec.toml", tmp_path / "w2", workers=2, threads=1, quiet=True, report=False)
    assert metrics(tmp_path / "w2") == metrics(root / "study")


def test_ray_executor_matches_local(reference, tmp_path):
    import ray  # a dev dependency: CI must exercise the Ray path, not skip it

    root, _ = reference
    (tmp_path / "spec.toml").write_text(SPEC)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        run_study(
            tmp_path / "spec.toml",
            tmp_path / "ray",
            executor="ray",
            workers=2,
            threads=1,
            quiet=True,
            report=False,
        )
    finally:
        ray.shutdown()
    assert metrics(tmp_path / "ray") == metrics(root / "study")


def test_dry_run_and_cli_errors(cli, tmp_path):
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC)
    code, out, _ = cli("study", str(spec), "--dry-run")
    assert code == 0 and "8 runs" in out and "scratch" in out
    assert not (tmp_path / "runs").exists()
    spec.write_text(SPEC.replace("size = [0.3, 1.0]", "per_class = [500]"))
    code, out, err = cli("study", str(spec), "--dir", str(tmp_path / "x"), "--quiet")
    assert code == 2 and "per_class=500 is more than class" in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    spec.write_text(SPEC)
    code, _, err = cli("study", str(spec), "--dir", str(blocker / "sub"))
    assert code == 2 and "not writable" in err


def test_ctrl_c_stops_cleanly_and_resumes(reference, tmp_path):
    root, _ = reference
    cmd = study_command(tmp_path)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    wait_for_first_run(proc)
    proc.send_signal(signal.SIGINT)
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 130 and "interrupted" in err and "Traceback" not in err
    with Store(tmp_path / "s") as store:
        counts = store.counts()
        # every unfinished run can be claimed again: released to pending, or owned by the exited process
        assert counts["done"] >= 1 and len(store.claimable()) == 8 - counts["done"] - counts["failed"]
    assert subprocess.run(cmd, capture_output=True, timeout=300).returncode == 0
    assert metrics(tmp_path / "s") == metrics(root / "study")
