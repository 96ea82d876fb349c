"""The store: claims are exclusive, results atomic with history, dead owners' runs reclaimable."""

from __future__ import annotations

import json
import multiprocessing as mp
import socket

import pytest

from transferlab.errors import TransferlabError
from transferlab.study.store import Store


def _specs(n):
    return [(f"r{i}", {"strategy": "scratch", "seed": i}) for i in range(n)]


def test_lifecycle_and_long_table(tmp_path):
    with Store(tmp_path) as store:
        assert store.add_runs(_specs(3)) == 3
        assert store.add_runs(_specs(4)) == 1  # known ids untouched
        assert store.claim("r0") and not store.claim("r0")  # a live owner keeps its claim
        history = [{"train_loss": 1.0, "train_accuracy": 0.5, "val_loss": 1.1, "val_accuracy": 0.4}] * 2
        assert store.finish("r0", {"test_accuracy": 0.9, "seed": 99}, history, version="t")
        assert store.claim("r1") and store.fail("r1", "NaN loss at epoch 3")
        assert store.counts() == {"pending": 2, "running": 0, "done": 1, "failed": 1}
        rows = {r["run_id"]: r for r in store.table()}
        assert (
            rows["r0"]["test_accuracy"] == 0.9 and rows["r0"]["seed"] == 0 and rows["r0"]["result_seed"] == 99
        )
        assert rows["r1"]["error"] == "NaN loss at epoch 3"
        assert [h["epoch"] for h in store.history("r0")] == [1, 2]
        assert [rid for rid, _ in store.claimable()] == ["r2", "r3"]
        assert store.retry_failed() == 1 and store.counts()["pending"] == 3


def test_rows_with_and_without_saved_indices_load_and_export(tmp_path):
    from transferlab.data.splits import INDICES_ENCODING, encode_indices, indices_from_record
    from transferlab.runs import RunResult
    from transferlab.study.export import long_table

    spec = {"strategy": "scratch", "dataset": "digits"}
    # Written by an older version: no "indices" field in the stored result.
    old = {"spec": spec, "status": "ok", "test_accuracy": 0.5, "indices_hash": "0" * 64, "code_version": ""}
    parts = {"train": encode_indices([3, 5, 8]), "val": encode_indices([1]), "test": encode_indices([0, 9])}
    new = {**old, "indices": {"encoding": INDICES_ENCODING, "classes": [0, 1], **parts}}
    with Store(tmp_path) as store:
        store.add_runs([("old", spec), ("new", spec)])
        for rid, result in (("old", old), ("new", new)):
            assert store.claim(rid) and store.finish(rid, result, version=result["code_version"])
        results = {run["run_id"]: RunResult.from_dict(run["result"]) for run in store.runs("done")}
        _, rows = long_table(store)
    assert results["old"].indices == {}
    assert indices_from_record(results["new"].indices)["train"].tolist() == [3, 5, 8]
    assert [row.get("indices") for row in rows] == [None, json.dumps(new["indices"], sort_keys=True)]


def test_finish_requires_the_claim(tmp_path):
    with Store(tmp_path) as store:
        store.add_runs(_specs(1))
        assert not store.finish("r0", {"x": 1})  # never claimed
        store.claim("r0", owner="elsewhere:1")
        assert not store.finish("r0", {"x": 1})  # claimed by someone else
        assert store.runs()[0]["status"] == "running"


def test_dead_owner_is_reclaimable(tmp_path):
    with Store(tmp_path, stale_after=60) as store:
        store.add_runs(_specs(2))
        proc = mp.get_context("fork").Process(target=lambda: None)
        proc.start()
        proc.join()
        store.claim("r0", owner=f"{socket.gethostname()}:{proc.pid}")  # that process is gone
        store.claim("r1", owner="otherhost:1")  # remote owner with a fresh heartbeat
        assert [rid for rid, _ in store.claimable()] == ["r0"]
        assert store.claim("r0")


def _claim_all(directory, queue, release):
    store = Store(directory)
    queue.put([rid for rid, _ in store.claimable() if store.claim(rid)])
    release.wait(600)  # stay alive: a claim whose owner process has exited is (rightly) reclaimable


def test_concurrent_claims_never_overlap(tmp_path):
    Store(tmp_path).add_runs(_specs(80))
    ctx = mp.get_context("fork")
    queue, release = ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=_claim_all, args=(tmp_path, queue, release)) for _ in range(4)]
    for p in procs:
        p.start()
    claimed = [queue.get(timeout=600) for _ in procs]
    release.set()
    for p in procs:
        p.join()
    flat = [r for c in claimed for r in c]
    assert sorted(flat) == sorted(f"r{i}" for i in range(80))  # each exactly once


def test_unwritable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot open the study store"):
        Store(blocker / "study")


def test_opening_retries_when_sqlite_answers_locked_without_waiting(tmp_path, monkeypatch):
    # Two processes creating one store at once: SQLite answers "database is locked" at once (no busy wait)
    # when waiting could deadlock; the open closes, backs off and tries again instead of failing the study.
    import sqlite3

    from transferlab.study import store as store_module

    real_connect, calls = store_module.Store._connect, []

    def flaky_connect(self):
        calls.append(1)
        real_connect(self)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(store_module.Store, "_connect", flaky_connect)
    with store_module.Store(tmp_path / "study") as store:
        store.set_meta("k", "v")
        assert store.get_meta("k") == "v"
    assert len(calls) == 3
    # Locked on every attempt: one line that names the store and says what to do, not "disk full".
    monkeypatch.setattr(store_module, "OPEN_ATTEMPTS", 2)
    calls.clear()
    monkeypatch.setattr(
        store_module.Store,
        "_connect",
        lambda self: (_ for _ in ()).throw(sqlite3.OperationalError("database is locked")),
    )
    with pytest.raises(
        TransferlabError, match=r"study\.sqlite: database is locked \(another process kept it locked\)"
    ):
        store_module.Store(tmp_path / "other")
