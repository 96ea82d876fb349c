"""Independent jobs on single-threaded workers: one OS thread per torch thread, each running torch with
one thread.

Why: the work transferlab repeats most is small per operation: a batch of 32 images through a traced
backbone, a 50-row mini-batch through a stack of heads. Inside one such operation two threads split a
few small matrix products and wait for each other (on a loaded machine OpenMP's waiting collapses the
rate altogether), while independent operations on separate cores scale almost linearly; torch kernels
release the GIL, so Python threads are enough. Evidence: benchmarks/extract.py ("steady" vs "steady,
serial") and benchmarks/heads_grid.py. Results do not depend on the number of workers: each job computes
what it would compute alone on one thread.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from typing import TypeVar

import torch

from transferlab.errors import TransferlabError

T = TypeVar("T")


class Stopped(Exception):
    """Raised by a job that saw ``stop`` set: another job failed or the caller was interrupted."""


def check_workers(workers: int | None) -> None:
    """A user's ``workers`` setting: a positive integer, or None for one per torch thread."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise TransferlabError(
            f"workers must be a positive integer or None (one per torch thread), got {workers!r}"
        )


def worker_count(jobs: int, requested: int | None = None, *, min_jobs_per_worker: int = 1) -> int:
    """Workers for ``jobs`` independent jobs: ``requested`` (None: torch's thread count), at most one per
    ``min_jobs_per_worker`` jobs; 1 means run them in the calling thread."""
    check_workers(requested)
    workers = torch.get_num_threads() if requested is None else requested
    return max(1, min(workers, jobs // max(1, min_jobs_per_worker)))


def run_jobs(jobs: Sequence[Callable[[threading.Event], T]], workers: int) -> list[T]:
    """``[job(stop) for job in jobs]``, on ``workers`` threads with one torch thread each (workers <= 1:
    in this thread, with its torch threads). The next free worker takes the next job, so give the longest
    jobs first. A job that raises sets ``stop``; jobs not yet started are skipped, long jobs should check
    ``stop`` (``raise Stopped``) at their natural steps; the first real error is re-raised once every
    worker has stopped. Ctrl-C in the caller stops the workers the same way. The caller's torch thread
    count is restored afterwards (setting it in a worker also changes torch's process-wide default)."""
    stop = threading.Event()
    if workers <= 1 or len(jobs) <= 1:
        return [job(stop) for job in jobs]

    def guarded(job: Callable[[threading.Event], T]) -> T:
        if stop.is_set():
            raise Stopped()
        try:
            return job(stop)
        except BaseException:
            stop.set()
            raise

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(
            workers, thread_name_prefix="transferlab", initializer=torch.set_num_threads, initargs=(1,)
        ) as pool:
            futures = [pool.submit(guarded, job) for job in jobs]
            try:
                wait(futures)
            except BaseException:  # Ctrl-C while waiting: running jobs stop at their next check
                stop.set()
                raise
        errors = [error for error in (f.exception() for f in futures) if error is not None]
        if errors:  # the first real error; Stopped only when nothing else went wrong
            raise next((e for e in errors if not isinstance(e, Stopped)), errors[0])
        return [f.result() for f in futures]
    finally:
        torch.set_num_threads(threads)
