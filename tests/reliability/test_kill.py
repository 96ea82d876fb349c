"""SIGKILL a real study at seeded random moments inside every phase, resume each time: nothing lost,
nothing duplicated, metrics bit-identical to the uninterrupted study, torn cache files never used.

Each kill is aimed with the test-only fault hook (:mod:`transferlab.faults`): the n-th pass through a
point in feature extraction, an atomic file write, a training epoch, a store commit or a report figure.
The point and n are drawn from a seeded generator among the moments the remaining work still reaches,
so every kill lands (the process must die of SIGKILL) and the sequence is the same on every machine.
"""

from __future__ import annotations

import random
import signal
import subprocess

import numpy as np
import pytest

from transferlab.data.datasets import load_dataset
from transferlab.data.splits import make_task
from transferlab.errors import TransferlabError, TransferlabWarning
from transferlab.faults import FAULT_ENV, POINTS, checkpoint
from transferlab.features import _entry_paths, cached_features, feature_key
from transferlab.study.store import Store

from .conftest import RUNS, fresh_env, results, study_command

SEED = 10
BACKBONE, SIDE = "efficientnet_lite0.in1k", 32  # the extract runs' backbone and input side (conftest.SPEC)


def _test_set_entry(cache_root):
    """(array, sidecar) paths of the cached test-set features. Every extract run reads this entry (the
    carved test set is the same for every size and seed), so the next one notices when it is torn."""
    digits = load_dataset("digits")
    task = make_task(digits, per_class=10, val_size=5, test_per_class=20, seed=0)
    key = feature_key(digits, task.test, BACKBONE, None, "avg", SIDE)
    return _entry_paths(key.digest(), cache_root / "features")


def _unfinished(directory) -> list[str]:
    """Strategies of the unfinished runs in ``directory``, in the order the study runs them."""
    runs = []
    if (directory / "study.sqlite").exists():
        with Store(directory) as store:
            runs = store.runs()
    if not runs:  # not started, or killed before the grid was registered (one transaction: all or none)
        return ["scratch"] * (RUNS // 2) + ["extract"] * (RUNS // 2)
    return [run["spec"]["strategy"] for run in runs if run["status"] != "done"]


# The phases in the order a study meets them, twice over; where in its phase each kill lands (n, the
# n-th pass through the point) is drawn at random from what the study's remaining work is sure to reach.
PLAN = (
    "atomic-write",
    "train-epoch",
    "store-commit",
    "train-epoch",
    "store-commit",
    "extract-batch",
    "atomic-write",
    "store-commit",
    "extract-batch",
    "report-figure",
)


def _reachable(point: str, left: list[str], started: bool) -> int:
    """How many passes through ``point`` a study with unfinished runs ``left`` is sure to make (each kill
    is kept within the next run or two, so that the kills spread over the whole study)."""
    extract_left = left.count("extract")
    return {
        "atomic-write": 1 if not started else (2 if extract_left >= 2 else 0),  # spec.toml; train features
        "train-epoch": 2 * min(2, left.count("scratch")),  # 2 epochs per scratch run
        "store-commit": min(2, len(left)),
        "extract-batch": 2 if extract_left >= 2 else 0,  # an unstarted extract run: >= 2 batches of 64
        "report-figure": 2,  # accuracy vs size and learning curves, written after the last run
    }[point]


def _check_invariants(directory, reference: dict, done_before: int) -> int:
    """No run lost or duplicated, every finished run equals the reference; returns the finished count."""
    current = results(directory)
    assert not current or set(current) == set(reference)  # the whole grid or none of it, each run once
    finished = {rid for rid, (status, _) in current.items() if status == "done"}
    assert all(current[rid] == reference[rid] for rid in finished)
    with Store(directory) as store:
        for run in store.runs("done"):  # no torn or doubled history
            assert len(store.history(run["run_id"])) == run["result"]["epochs_run"]
    assert len(finished) >= done_before  # a kill never undoes a finished run
    return len(finished)


def test_sigkill_at_random_moments_loses_nothing(reference, spec_file, tmp_path):
    directory, cache = tmp_path / "study", tmp_path / "cache"
    command, env = study_command(spec_file, directory), fresh_env(cache)
    test_entry, _ = _test_set_entry(cache)
    rng, done, torn, stderr = random.Random(SEED), 0, [], []
    for point in PLAN:
        reachable = _reachable(point, _unfinished(directory), (directory / "spec.toml").exists())
        assert reachable, f"{point} cannot be reached from here: {_unfinished(directory)}"
        n = rng.randint(1, reachable)
        proc = subprocess.run(
            command, env={**env, FAULT_ENV: f"{point}:{n}:KILL"}, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == -signal.SIGKILL, f"{point}:{n} was not reached: {proc.stderr[-2000:]}"
        stderr.append(proc.stderr)
        done = _check_invariants(directory, reference, done)
        if "extract" in _unfinished(directory) and test_entry.is_file() and len(torn) < 2:
            # a torn file (cut short, as by a crash on a filesystem without atomic rename) and, later, an
            # altered one (same length, one byte changed): both must be noticed and recomputed
            data = bytearray(test_entry.read_bytes())
            data = data[: len(data) // 2] if not torn else data[:-1] + bytes([data[-1] ^ 0xFF])
            test_entry.write_bytes(bytes(data))
            torn.append(len(stderr))
    assert set(PLAN) == set(POINTS) and len(PLAN) >= 10  # every phase, at least 10 kills
    final = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    stderr.append(final.stderr)
    assert results(directory) == reference  # all runs, once each, bit-identical
    assert (directory / "report" / "report.html").is_file()
    assert not list(directory.glob(".report-*"))  # the killed report's staging folder was cleared
    assert torn, "the test-set features were never cached between two extract runs"
    later = "".join(stderr[torn[0] :])
    assert "is unreadable" in later and "recomputing" in later


@pytest.fixture(scope="module")
def few_digits():
    digits = load_dataset("digits")
    return digits, np.arange(0, 40, 2)


def test_torn_altered_or_orphaned_cache_files_are_never_used(few_digits, tmp_path):
    digits, indices = few_digits
    first = cached_features(digits, indices, BACKBONE, size=SIDE, cache=tmp_path)
    array_path, meta_path = _entry_paths(feature_key(digits, indices, BACKBONE, size=SIDE).digest(), tmp_path)
    whole = array_path.read_bytes()
    cases = [
        (whole[: len(whole) // 3], "is unreadable"),
        (whole[:-4] + b"\x00\x00\x80\x7f", "do not match the recorded shape/checksum"),  # last float -> inf
    ]
    for content, why in cases:
        array_path.write_bytes(content)
        with pytest.warns(TransferlabWarning, match=why):
            again = cached_features(digits, indices, BACKBONE, size=SIDE, cache=tmp_path)
        np.testing.assert_array_equal(again, first)
        assert array_path.read_bytes() == whole  # recomputed and rewritten
    # a kill between the array and its sidecar leaves an array nobody vouches for, plus a temp file
    meta_path.unlink()
    (array_path.parent / f".{array_path.name}.x.tmp").write_bytes(b"partial")
    array_path.write_bytes(whole[:100])
    again = cached_features(digits, indices, BACKBONE, size=SIDE, cache=tmp_path)
    np.testing.assert_array_equal(again, first)
    assert meta_path.is_file()


def test_fault_hook_rejects_unknown_points(monkeypatch):
    monkeypatch.setenv(FAULT_ENV, "store-comit:1:KILL")
    with pytest.raises(TransferlabError, match=r"'store-comit' is unknown \(did you mean: store-commit\?\)"):
        checkpoint("store-commit")
    monkeypatch.setenv(FAULT_ENV, "store-commit:0:TERM")
    with pytest.raises(TransferlabError, match="give POINT:N:SIGNAL with N >= 1 and SIGNAL KILL or INT"):
        checkpoint("store-commit")
