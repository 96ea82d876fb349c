"""Where runs execute: in this process, in a local process pool, or on a Ray cluster.

All three hand back ``concurrent.futures.Future`` objects, so one driver loop (``drive``) claims runs in
the store, keeps the executor busy, writes each result the moment it arrives and gives unfinished claims
back on Ctrl-C. The driver, not the workers, owns the store: workers are pure functions of a run spec,
which is what lets Ray workers on other machines take part without sharing the study directory.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from transferlab.errors import TransferlabError

EXECUTORS = ("local", "ray")
HEARTBEAT_SECONDS = 30.0

_LOADED: dict = {}  # dataset name -> ImageSet, per worker process: load each dataset once per worker


def default_threads(workers: int) -> int:
    """Torch threads per run: the machine's cores shared between the parallel runs."""
    return max(1, (os.cpu_count() or 1) // workers)


@contextlib.contextmanager
def _fixed_threads(threads: int):
    """torch threads and the BLAS/OpenMP pools (numpy, scikit-learn heads) at ``threads`` inside the block:
    Ray caps BLAS at 1, a plain process does not, and CPU reductions split by thread."""
    import torch
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        torch.set_num_threads(previous)


def _dataset(name: str):
    """The ImageSet ``name``, loaded once per worker process."""
    from transferlab.data.datasets import load_dataset

    if name not in _LOADED:
        _LOADED[name] = load_dataset(name)
    return _LOADED[name]


def execute_run(spec: dict, threads: int) -> dict:
    """Run one resolved spec (a dict) with ``threads`` torch threads; return ``RunResult.to_dict()``.

    Never raises for a run's own failure: bad input or a crash inside training comes back as status
    "failed" with the reason. The thread count is fixed per run and recorded (hyperparameters
    ``torch_threads``) because CPU reductions split by thread: results are bit-identical for the same
    spec and thread count, whichever executor ran them."""
    from transferlab import strategies
    from transferlab.runs import RunResult, RunSpec

    run_spec = RunSpec.from_dict(spec)
    try:
        with _fixed_threads(threads):
            result = strategies.run(run_spec, _dataset(run_spec.dataset))
    except TransferlabError as exc:
        result = RunResult(spec=spec, status="failed", error=str(exc))
    result.hyperparameters["torch_threads"] = threads
    return result.to_dict()


def execute_runs(specs: list[dict], threads: int) -> list[dict]:
    """Several resolved specs of one batch (see :func:`group_runs`) with ``threads`` torch threads, through
    ``strategies.run_batch``: heads that share cached features train in one pass. One result dict per
    spec, each as :func:`execute_run` would return it (failures included)."""
    from transferlab import strategies
    from transferlab.runs import RunResult, RunSpec

    try:
        with _fixed_threads(threads):
            results = strategies.run_batch(
                [RunSpec.from_dict(spec) for spec in specs], _dataset(specs[0]["dataset"])
            )
    except TransferlabError as exc:  # the batch's dataset cannot be loaded: every run fails with the reason
        results = [RunResult(spec=spec, status="failed", error=str(exc)) for spec in specs]
    for result in results:
        result.hyperparameters["torch_threads"] = threads
    return [result.to_dict() for result in results]


def group_runs(todo: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    """``todo`` (run_id, spec) as units of work: runs with the same ``Strategy.batch_key`` (extract's
    fc1-3/gap heads on the same features, subset and batch order) form one unit, trained in one batched pass; every other
    run is a unit of its own. Units keep the order of their first run. The grouping depends only on
    ``todo``, never on the executor, so every executor computes the same batches."""
    from transferlab.catalog import get_strategy
    from transferlab.runs import RunSpec

    units: dict[object, list[tuple[str, dict]]] = {}
    for rid, spec in todo:
        try:
            resolved = RunSpec.from_dict(spec).resolved()
            key = get_strategy(resolved.strategy).batch_key(resolved)
        except TransferlabError:  # a spec the run itself will reject: alone, so it fails alone
            key = None
        units.setdefault(rid if key is None else key, []).append((rid, spec))
    return list(units.values())


class InlineExecutor:
    """Runs each spec in this process when submitted (workers=1: simplest, and easiest to debug)."""

    capacity = 1

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def submit(self, spec: dict) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(execute_run(spec, self.threads))
        return future

    def submit_batch(self, specs: list[dict]) -> cf.Future:
        future: cf.Future = cf.Future()
        future.set_result(execute_runs(specs, self.threads))
        return future

    def shutdown(self, cancel: bool = False) -> None:
        pass


class LocalPoolExecutor:
    """``workers`` processes (spawned: no forked torch state), each run with ``threads`` threads."""

    def __init__(self, workers: int, threads: int) -> None:
        import multiprocessing as mp

        self.capacity, self.threads = workers, threads
        self._pool = cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"))

    def submit(self, spec: dict) -> cf.Future:
        return self._pool.submit(execute_run, spec, self.threads)

    def submit_batch(self, specs: list[dict]) -> cf.Future:
        return self._pool.submit(execute_runs, specs, self.threads)

    def shutdown(self, cancel: bool = False) -> None:
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class RayExecutor:
    """Ray tasks (one CPU each by default). ``address``: None starts a local Ray with ``workers`` CPUs;
    "auto" or "HOST:PORT" joins a running cluster."""

    def __init__(self, workers: int, threads: int, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise TransferlabError("--executor ray needs Ray: pip install 'ray>=2.9'") from None
        self._ray = ray
        if not ray.is_initialized():
            kwargs = {"address": address} if address else {"num_cpus": workers}
            ray.init(include_dashboard=False, log_to_driver=False, **kwargs)
        self.capacity = workers if not address else max(workers, int(ray.cluster_resources().get("CPU", 1)))
        self.threads = threads
        self._remote = ray.remote(num_cpus=1)(execute_run)
        self._remote_batch = ray.remote(num_cpus=1)(execute_runs)

    def submit(self, spec: dict) -> cf.Future:
        return self._remote.remote(spec, self.threads).future()

    def submit_batch(self, specs: list[dict]) -> cf.Future:
        return self._remote_batch.remote(specs, self.threads).future()

    def shutdown(self, cancel: bool = False) -> None:
        pass  # a Ray runtime is shared: leave it to its owner (ray.shutdown() ends a local one)


def check_executor(kind: str, workers: int, threads: int | None = None) -> None:
    """Raise TransferlabError for an unknown executor or a worker/thread count below 1 (None: the default)."""
    if kind not in EXECUTORS:
        raise TransferlabError(f"executor {kind!r} is unknown; valid: {', '.join(EXECUTORS)}")
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise TransferlabError(f"workers={workers!r} is invalid; give a whole number >= 1")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise TransferlabError(f"threads={threads!r} is invalid; give a whole number >= 1")


def make_executor(kind: str, workers: int, address: str | None = None, threads: int | None = None):
    """An executor for ``workers`` parallel runs of ``threads`` torch threads each (default: cores split
    between the workers)."""
    check_executor(kind, workers, threads)
    if threads is None:
        threads = default_threads(workers)
    if kind == "ray":
        return RayExecutor(workers, threads, address)
    return InlineExecutor(threads) if workers == 1 else LocalPoolExecutor(workers, threads)


@dataclass
class DriveOutcome:
    done: int = 0
    failed: int = 0
    skipped: int = 0  # claimed by another process meanwhile
    results: list[dict] = field(default_factory=list)


def drive(
    store,
    todo: list[tuple[str, dict]],
    executor,
    on_result: Callable[[str, dict], None] | None = None,
    version: str = "",
) -> DriveOutcome:
    """Claim and execute ``todo`` (run_id, spec) through ``executor``, recording every result in ``store``.

    Runs that share work (:func:`group_runs`: extract heads on the same cached features) are claimed
    together and submitted as one batch; each is still recorded on its own the moment the batch returns,
    heartbeats cover every run of a batch in flight, and a stop releases all of them.
    Ctrl-C: unfinished claims are released (pending again) before KeyboardInterrupt propagates, so the
    same command resumes them. A worker process that dies takes only its own run down (recorded failed).
    """
    queue = deque(group_runs(todo))
    inflight: dict[cf.Future, list[str]] = {}
    claimed: set[str] = set()  # claimed and not yet recorded: what a stop must give back
    outcome = DriveOutcome()
    last_beat = time.monotonic()
    try:
        while queue or inflight:
            while queue and len(inflight) < executor.capacity:
                unit = queue.popleft()
                mine = [(rid, spec) for rid, spec in unit if store.claim(rid)]
                outcome.skipped += len(unit) - len(mine)
                if not mine:
                    continue
                claimed.update(rid for rid, _ in mine)
                # the inline executor runs the whole run (or batch) here
                if len(mine) == 1:
                    inflight[executor.submit(mine[0][1])] = [mine[0][0]]
                else:
                    inflight[executor.submit_batch([spec for _, spec in mine])] = [rid for rid, _ in mine]
            done, _ = cf.wait(list(inflight), timeout=HEARTBEAT_SECONDS, return_when=cf.FIRST_COMPLETED)
            for future in done:
                rids = inflight.pop(future)
                try:
                    results = future.result()
                    results = [results] if isinstance(results, dict) else results
                except Exception as exc:  # the worker itself died (e.g. killed, out of memory)
                    failure = {"status": "failed", "error": f"worker failed: {type(exc).__name__}: {exc}"}
                    results = [failure] * len(rids)
                for rid, result in zip(rids, results, strict=True):
                    _record(store, rid, dict(result), version, outcome)
                    claimed.discard(rid)
                    if on_result:
                        on_result(rid, result)
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS and inflight:
                store.heartbeat([rid for rids in inflight.values() for rid in rids])
                last_beat = time.monotonic()
    except BaseException:
        # A stop between a claim and its record leaves nothing half-done: unrecorded claims go back to
        # pending (and a claim this misses, e.g. one interrupted inside claim() itself, belongs to a dead
        # process once we exit, which makes it claimable again).
        store.release(claimed)
        executor.shutdown(cancel=True)
        raise
    executor.shutdown()
    return outcome


def _record(store, rid: str, result: dict, version: str, outcome: DriveOutcome) -> None:
    if result.get("status") == "ok":
        history = result.pop("history", [])
        store.finish(rid, result, history, version=version)
        outcome.done += 1
    else:
        store.fail(rid, result.get("error") or "unknown failure", version=version)
        outcome.failed += 1
    outcome.results.append(result)
