"""Strategy tests run on real digits images at 16-32 px with a few images per class and capped test
sets, so each run takes seconds on 2 CPU cores. Caches (source models, features) go to a temporary
folder shared by one test module."""

from __future__ import annotations

import pytest

from transferlab.runs import RunSpec

SMALL = {"dataset": "digits", "input_size": 16, "val_size": 5, "test_per_class": 20}


@pytest.fixture(scope="session")
def small_spec():
    """small_spec(strategy, **changes): a run on digits small enough for a unit test."""

    def make(strategy: str, **changes) -> RunSpec:
        return RunSpec(strategy=strategy, **{**SMALL, **changes})

    return make
