"""Single-threaded workers: results in job order, one torch thread per worker, the first real error
re-raised after the others stopped, the caller's thread count restored, bad settings named."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from transferlab import TransferlabError
from transferlab.parallel import Stopped, run_jobs, worker_count


def test_results_come_in_job_order_from_single_threaded_workers():
    threads = torch.get_num_threads()
    seen = set()

    def job(k):
        def work(stop):
            seen.add((threading.get_ident(), torch.get_num_threads()))
            time.sleep(0.01 * (k % 3))  # finish out of order
            return k * k

        return work

    assert run_jobs([job(k) for k in range(12)], 3) == [k * k for k in range(12)]
    assert {n for _, n in seen} == {1} and 1 < len({t for t, _ in seen}) <= 3
    assert torch.get_num_threads() == threads
    assert run_jobs([job(k) for k in range(3)], 1) == [0, 1, 4]  # in this thread, with its threads


def test_a_failure_stops_long_jobs_and_skips_the_rest():
    steps = []

    def failing(stop):
        time.sleep(0.05)
        raise ValueError("bad job")

    def long(stop):
        for step in range(1000):
            if stop.is_set():
                raise Stopped()
            steps.append(step)
            time.sleep(0.001)
        return "done"

    started = []
    later = [lambda stop, k=k: started.append(k) for k in range(20)]
    with pytest.raises(ValueError, match="bad job"):  # the real error, not a Stopped
        run_jobs([long, failing, *later], 2)
    assert len(steps) < 1000 and started == []


def test_worker_count_and_bad_settings():
    assert worker_count(10, 4) == 4 and worker_count(3, 4) == 3 and worker_count(0, 4) == 1
    assert worker_count(5, 2, min_jobs_per_worker=2) == 2 and worker_count(3, 2, min_jobs_per_worker=2) == 1
    assert worker_count(100) == torch.get_num_threads()
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(
            TransferlabError,
            match=r"workers must be a positive integer or None \(one per torch thread\), got",
        ):
            worker_count(4, bad)
