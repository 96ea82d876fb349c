"""The durable record of a study: one SQLite file (WAL) in the study directory.

Claim: killing a study at any moment loses no finished run and duplicates none. Evidence:
- a run moves pending -> running -> done|failed by single-statement conditional UPDATEs inside
  ``BEGIN IMMEDIATE`` transactions, so two processes can never both claim it;
- a result and its per-epoch history are written in the same transaction that marks the run done, and only
  by the process that owns the claim (a reclaimed run's old owner cannot overwrite the new one);
- a 'running' row whose owner process is gone (same host: PID not alive; other hosts: no heartbeat for
  ``stale_after`` seconds) is claimable again, so a SIGKILLed study resumes where it stopped.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from transferlab import faults
from transferlab.errors import TransferlabError

STATUSES = ("pending", "running", "done", "failed")
HISTORY_FIELDS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
OPEN_ATTEMPTS = 8  # opening a store two processes create at once (about 5 s of backoff in all)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id      TEXT PRIMARY KEY,
    position    INTEGER NOT NULL,           -- order in the expanded grid
    spec        TEXT NOT NULL,              -- resolved run spec, JSON
    status      TEXT NOT NULL CHECK (status IN ('pending', 'running', 'done', 'failed')),
    owner       TEXT,                       -- host:pid of the process that claimed it
    heartbeat   REAL,                       -- unix seconds of the owner's last sign of life
    attempts    INTEGER NOT NULL DEFAULT 0,
    started_at  REAL,
    finished_at REAL,
    result      TEXT,                       -- RunResult without history, JSON
    error       TEXT,
    version     TEXT                        -- code version (release + source hash) that produced it
);
CREATE INDEX IF NOT EXISTS runs_status ON runs (status, position);
CREATE TABLE IF NOT EXISTS history (
    run_id TEXT NOT NULL REFERENCES runs (run_id), epoch INTEGER NOT NULL,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    PRIMARY KEY (run_id, epoch)
);
"""


def _json_object(text: str, run_id: str, column: str) -> dict:
    """A JSON column of a row, or ValueError: damage inside a record (bytes changed, the page structure
    intact) passes ``quick_check`` and shows only as text that is no longer the JSON object we wrote."""
    try:
        value = json.loads(text)
    except ValueError as exc:  # JSONDecodeError
        raise ValueError(f"the {column} of run {run_id} is not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"the {column} of run {run_id} is a JSON {type(value).__name__}, not an object")
    return value


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _owner_gone(owner: str | None, heartbeat: float | None, now: float, stale_after: float) -> bool:
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        return not _pid_alive(int(pid))
    return heartbeat is None or now - heartbeat > stale_after


class Store:
    """Runs and their histories for one study directory (``DIR/study.sqlite``)."""

    FILENAME = "study.sqlite"

    def __init__(self, directory: str | os.PathLike, stale_after: float = 600.0) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.FILENAME
        self.stale_after = stale_after
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            for attempt in range(OPEN_ATTEMPTS):
                try:
                    self._connect()
                    break
                except sqlite3.OperationalError as exc:
                    # Two processes creating one store at once: switching a new file to WAL needs an
                    # exclusive lock, and SQLite answers "locked" at once, without waiting, when waiting
                    # could deadlock (each holds a shared lock). Nothing was written: close and try again.
                    if "locked" not in str(exc) or attempt == OPEN_ATTEMPTS - 1:
                        raise
                    with suppress(sqlite3.Error, AttributeError):  # no connection if connect() failed
                        self._db.close()
                    time.sleep(min(0.02 * 2**attempt, 1.0) * (1 + (os.getpid() % 7) / 7))
        except sqlite3.OperationalError as exc:  # e.g. "disk I/O error" creating the WAL index
            raise self._write_error(exc, "open") from None
        except sqlite3.DatabaseError as exc:
            with suppress(sqlite3.Error, AttributeError):
                self._db.close()
            if "not a database" in str(exc):  # garbage, or encrypted: not a store at all
                raise TransferlabError(
                    f"cannot open the study store {self.path}: {exc} (a corrupt file, or not a transferlab "
                    "study? it is left as it is: move it aside to start the study afresh)"
                ) from None
            raise self._corrupt(exc) from None
        except OSError as exc:
            raise TransferlabError(
                f"cannot open the study store {self.path}: {exc} (a corrupt file, or not a transferlab "
                "study? it is left as it is: move it aside to start the study afresh)"
            ) from None

    def _connect(self) -> None:
        existing = self.path.is_file() and self.path.stat().st_size > 0
        # isolation_level=None: we issue BEGIN ourselves; timeout: wait for a busy writer, never fail fast.
        self._db = sqlite3.connect(self.path, timeout=120, isolation_level=None, check_same_thread=False)
        if existing:
            self._check_existing()  # reads only: a file we refuse is left byte for byte as it was
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=120000")
        self._db.executescript(_SCHEMA)  # idempotent (IF NOT EXISTS); runs in its own transaction

    def _check_existing(self) -> None:
        """Refuse, before any write, a file that is another program's database or a damaged store. A damaged
        page can hide behind queries that never touch it (the runs table reads fine, the history does not):
        ``PRAGMA quick_check`` reads every page once (about a second per 100 MB). Damage inside a record
        passes it, so every run is then read and its spec and result decoded (about 0.05 s per 1,000 runs)."""
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        ours = {"meta", "runs", "history"}
        if tables and not tables & ours:
            self._db.close()
            raise TransferlabError(
                f"{self.path} is an SQLite database of another program (tables: {', '.join(sorted(tables)[:5])}), "
                "not a transferlab study store; it is left as it is: choose another study directory (--dir)"
            )
        rows = [str(row[0]) for row in self._db.execute("PRAGMA quick_check")]
        if rows != ["ok"]:  # one row per problem, the first prefixed "*** in database main ***\n": one line
            problems = [line.strip() for row in rows for line in row.splitlines()]
            problems = [line for line in problems if line and not line.startswith("***")] or [
                "unknown damage"
            ]
            raise sqlite3.DatabaseError(
                f"database disk image is malformed (quick_check: {problems[0]}; "
                f"{len(problems)} problem(s) found)"
            )
        # Every run record decoded once, as the commands will: a changed byte inside a text (not UTF-8, no longer
        # JSON) is damage too, and `study` must not call a store "all done" that `report` cannot read.
        try:
            # (the history's only text, run_id, is matched in SQL and never read back into Python)
            if "meta" in tables:
                self._db.execute("SELECT * FROM meta").fetchall()  # every text column decoded to str
            if "runs" in tables:
                for run_id, spec, result, *_ in self._db.execute("SELECT run_id, spec, result, * FROM runs"):
                    _json_object(spec, run_id, "spec")
                    if result is not None:
                        _json_object(result, run_id, "result")
        except (
            sqlite3.OperationalError
        ) as exc:  # "Could not decode to UTF-8 column ..." (Python's, not SQLite's)
            if "decode" not in str(exc):
                raise
            raise sqlite3.DatabaseError(str(exc)) from None
        except ValueError as exc:
            raise sqlite3.DatabaseError(str(exc)) from None

    def _corrupt(self, exc: Exception) -> TransferlabError:
        why = " ".join(str(exc).split())  # one line, whatever SQLite put in it
        return TransferlabError(
            f"the study store {self.path} is damaged: {why}; it is left as it is (nothing was written to it): "
            "restore it from a backup, or move it aside to start the study afresh"
        )

    def _decoded(self, text: str, run_id: str, column: str) -> dict:
        try:
            return _json_object(text, run_id, column)
        except ValueError as exc:
            raise self._corrupt(exc) from None

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Queries of a store damaged after it was opened: one error naming the file, not a traceback."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            raise self._corrupt(exc) from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: takes the write lock up front, so read-then-write cannot race."""
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.DatabaseError as exc:
            raise self._write_error(exc) from None
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException as exc:
            with suppress(sqlite3.Error):  # a failed COMMIT may already have ended the transaction
                self._db.execute("ROLLBACK")
            if isinstance(exc, sqlite3.DatabaseError):
                raise self._write_error(exc) from None
            raise

    def _write_error(self, exc: sqlite3.DatabaseError, action: str = "write") -> TransferlabError:
        """A write the disk refused (full, a file size limit, read-only): nothing of it was stored."""
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return self._corrupt(exc)  # damage found while writing: the disk is not to blame
        if "locked" in str(exc):
            return TransferlabError(
                f"cannot {action} the study store {self.path}: {exc} (another process kept it locked); every "
                "finished run is kept: run the same command again to resume"
            )
        return TransferlabError(
            f"cannot {action} the study store {self.path}: {exc} (disk full, a file size limit or a read-only "
            "directory?); every finished run is kept: make room and run the same command to resume"
        )

    # ------------------------------------------------------------------------------ meta

    def get_meta(self, key: str) -> str | None:
        with self._reading():
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    # ------------------------------------------------------------------------------ runs

    def add_runs(self, runs: Iterable[tuple[str, dict]]) -> int:
        """Register (run_id, spec) pairs as pending; known run ids are left as they are. Returns new rows."""
        with self.transaction() as db:
            start = db.execute("SELECT COALESCE(MAX(position) + 1, 0) FROM runs").fetchone()[0]
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO runs (run_id, position, spec, status) VALUES (?, ?, ?, 'pending')",
                [(rid, start + i, json.dumps(spec, sort_keys=True)) for i, (rid, spec) in enumerate(runs)],
            )
            return db.total_changes - before

    def claim(self, run_id: str, owner: str | None = None) -> bool:
        """Take a pending (or abandoned running) run for ``owner``; False if someone else has it."""
        owner = owner or owner_id()
        now = time.time()
        with self.transaction() as db:
            row = db.execute(
                "SELECT status, owner, heartbeat FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                raise TransferlabError(f"run {run_id} is not in this study")
            status, old_owner, heartbeat = row
            free = status == "pending" or (
                status == "running" and _owner_gone(old_owner, heartbeat, now, self.stale_after)
            )
            if not free:
                return False
            db.execute(
                "UPDATE runs SET status = 'running', owner = ?, heartbeat = ?, started_at = ?, "
                "attempts = attempts + 1 WHERE run_id = ?",
                (owner, now, now, run_id),
            )
            return True

    def claimable(self) -> list[tuple[str, dict]]:
        """Runs that may be claimed now (pending, or running with a vanished owner), in grid order."""
        now = time.time()
        with self._reading():
            rows = self._db.execute(
                "SELECT run_id, spec, status, owner, heartbeat FROM runs WHERE status IN ('pending', 'running') "
                "ORDER BY position"
            ).fetchall()
        return [
            (rid, self._decoded(spec, rid, "spec"))
            for rid, spec, status, owner, hb in rows
            if status == "pending" or _owner_gone(owner, hb, now, self.stale_after)
        ]

    def heartbeat(self, run_ids: Iterable[str], owner: str | None = None) -> None:
        owner = owner or owner_id()
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET heartbeat = ? WHERE run_id = ? AND owner = ? AND status = 'running'",
                [(time.time(), rid, owner) for rid in run_ids],
            )

    def finish(
        self,
        run_id: str,
        result: dict,
        history: list[dict] | None = None,
        owner: str | None = None,
        version: str = "",
    ) -> bool:
        """Record a finished run and its per-epoch history atomically; False if ``owner`` lost the claim."""
        owner = owner or owner_id()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'done', result = ?, error = NULL, finished_at = ?, version = ? "
                "WHERE run_id = ? AND owner = ? AND status = 'running'",
                (json.dumps(result, sort_keys=True), time.time(), version, run_id, owner),
            )
            if cur.rowcount != 1:
                return False
            db.execute("DELETE FROM history WHERE run_id = ?", (run_id,))
            db.executemany(
                "INSERT INTO history (run_id, epoch, train_loss, train_accuracy, val_loss, val_accuracy) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                # the record's own epoch: with a step budget, checks are not every epoch (0 = the start)
                [
                    (run_id, h.get("epoch", i + 1), *(h.get(f) for f in HISTORY_FIELDS))
                    for i, h in enumerate(history or [])
                ],
            )
            faults.checkpoint("store-commit")
            return True

    def fail(self, run_id: str, error: str, owner: str | None = None, version: str = "") -> bool:
        """Record a failed run with its reason; False if ``owner`` lost the claim."""
        owner = owner or owner_id()
        with self.transaction() as db:
            cur = db.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished_at = ?, version = ? "
                "WHERE run_id = ? AND owner = ? AND status = 'running'",
                (error, time.time(), version, run_id, owner),
            )
            return cur.rowcount == 1

    def release(self, run_ids: Iterable[str], owner: str | None = None) -> None:
        """Give claimed, unfinished runs back (a clean stop, e.g. Ctrl-C)."""
        owner = owner or owner_id()
        with self.transaction() as db:
            db.executemany(
                "UPDATE runs SET status = 'pending', owner = NULL WHERE run_id = ? AND owner = ? AND status = 'running'",
                [(rid, owner) for rid in run_ids],
            )

    def retry_failed(self) -> int:
        """Make every failed run pending again; returns how many."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE runs SET status = 'pending', owner = NULL WHERE status = 'failed'"
            ).rowcount

    # ------------------------------------------------------------------------------ reading

    def counts(self) -> dict[str, int]:
        with self._reading():
            rows = self._db.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | dict(rows)

    def runs(self, status: str | None = None) -> list[dict]:
        """Every run as a dict: run_id, status, error, attempts, spec (dict), result (dict or None)."""
        if status is not None and status not in STATUSES:
            raise TransferlabError(f"status {status!r} is unknown; valid: {', '.join(STATUSES)}")
        query = "SELECT run_id, status, error, attempts, spec, result, version FROM runs"
        with self._reading():
            rows = self._db.execute(
                query + (" WHERE status = ?" if status else "") + " ORDER BY position",
                (status,) if status else (),
            ).fetchall()
        return [
            {
                "run_id": r[0],
                "status": r[1],
                "error": r[2],
                "attempts": r[3],
                "spec": self._decoded(r[4], r[0], "spec"),
                "result": self._decoded(r[5], r[0], "result") if r[5] else None,
                "version": r[6],
            }
            for r in rows
        ]

    def history(self, run_id: str) -> list[dict]:
        with self._reading():
            rows = self._db.execute(
                f"SELECT epoch, {', '.join(HISTORY_FIELDS)} FROM history WHERE run_id = ? ORDER BY epoch",
                (run_id,),
            ).fetchall()
        return [dict(zip(("epoch", *HISTORY_FIELDS), r, strict=True)) for r in rows]

    def table(self) -> list[dict]:
        """The long table: one flat row per run — spec fields, then status/error, then result fields."""
        out = []
        for run in self.runs():
            row = {
                "run_id": run["run_id"],
                **run["spec"],
                "status": run["status"],
                "error": run["error"],
                "attempts": run["attempts"],
                "version": run["version"],
            }
            for key, value in (run["result"] or {}).items():
                row[key if key not in row else f"result_{key}"] = value
            out.append(row)
        return out
