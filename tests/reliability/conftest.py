"""A tiny real study shared by the reliability tests: digits, 8 runs (a shallow CNN from scratch on 8 px,
and logistic regression on ImageNet Lite0 features at 32 px), about 10 s uninterrupted on 2 cores.

``reference`` runs it once, uninterrupted and in this process, with one torch thread per run; every
killed, concurrent or repeated CLI run (also ``--threads 1``) must reproduce its results bit for bit.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from transferlab.study.runner import run_study
from transferlab.study.store import Store

SPEC = """
name = "tiny"
description = "digits at 10 and 20 labels per class: shallow CNN from scratch vs Lite0 features + logreg"
repeats = 2

[base]
dataset = "digits"
per_class = [10, 20]
val_size = 5
test_per_class = 20
epochs = 2
batch_size = 16

[[runs]]
strategy = "scratch"
backbone = "shallow_cnn"
input_size = 8

[[runs]]
strategy = "extract"
backbone = "efficientnet_lite0.in1k"
input_size = 32
head = "logreg"
"""
RUNS = 8


def comparable(result: dict) -> dict:
    """A stored result without its wall-clock timings: what must be bit-identical between two runs."""
    return {k: v for k, v in result.items() if not k.endswith("_seconds")}


def results(directory: Path) -> dict[str, tuple[str, dict | None]]:
    """run_id -> (status, comparable result) for every run of the study in ``directory``."""
    with Store(directory) as store:
        return {r["run_id"]: (r["status"], r["result"] and comparable(r["result"])) for r in store.runs()}


def study_command(spec: Path, directory: Path, *extra: str) -> list[str]:
    """``transferlab study`` on ``spec`` in ``directory``, one thread per run like the reference."""
    return [
        sys.executable,
        "-m",
        "transferlab.cli",
        "study",
        str(spec),
        "--dir",
        str(directory),
        "--quiet",
        "--threads",
        "1",
        *extra,
    ]


def fresh_env(cache: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess with its own (cold) feature cache."""
    return {**os.environ, "TRANSFERLAB_CACHE": str(cache), **extra}


@pytest.fixture
def spec_file(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(SPEC)
    return path


@pytest.fixture(scope="session")
def reference_study(tmp_path_factory) -> Path:
    """The directory of the uninterrupted study (no report); copy it before changing anything."""
    root = tmp_path_factory.mktemp("reference")
    (root / "tiny.toml").write_text(SPEC)
    outcome = run_study(root / "tiny.toml", root / "study", threads=1, quiet=True, report=False)
    assert (outcome.total, outcome.done, outcome.failed) == (RUNS, RUNS, 0)
    return root / "study"


@pytest.fixture(scope="session")
def reference(reference_study) -> dict:
    """results() of the uninterrupted study."""
    return results(reference_study)
