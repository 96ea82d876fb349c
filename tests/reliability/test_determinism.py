"""Determinism on CPU: the same spec and seed give bit-identical results, run after run.

Here: one run repeated in one process, for each kind of training (no state leaks between runs). Across
processes: every killed, resumed and concurrent study in this folder is compared with the in-process
reference field by field (test_kill, test_concurrency, test_bad_inputs; the concurrent one also compares
per-epoch histories and the recomputed cache files); ``--workers 1`` vs ``--workers 2`` and Ray are
compared in tests/study/test_runner.py.
"""

from __future__ import annotations

import pytest

from transferlab.runs import RunSpec
from transferlab.strategies import run

from .conftest import comparable

LITE0 = "efficientnet_lite0.in1k"
SPECS = {
    "scratch": dict(strategy="scratch", backbone="shallow_cnn", input_size=8, epochs=3),
    "augment": dict(strategy="augment", backbone="shallow_cnn", input_size=8, epochs=3),
    "extract-fc2": dict(
        strategy="extract", backbone=LITE0, input_size=32, head="fc2", activation="elu", epochs=5
    ),
    "extract-svm": dict(strategy="extract", backbone=LITE0, input_size=32, head="svm"),
}


@pytest.mark.parametrize("name", list(SPECS))
def test_the_same_run_twice_in_one_process_is_bit_identical(name):
    """No state leaks from one run into the next (random generators, BatchNorm, cached models)."""
    spec = RunSpec(
        dataset="digits", per_class=15, val_size=5, test_per_class=20, seed=3, batch_size=16, **SPECS[name]
    )
    first, second = (run(spec).to_dict() for _ in range(2))
    assert first["status"] == "ok" and first["test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    for result in (first, second):
        for epoch in result["history"]:
            epoch.pop("seconds", None)
    assert comparable(first) == comparable(second)
