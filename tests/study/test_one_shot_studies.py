"""Issue 20's benchmark studies expand into the grids their headers describe, every run holding out the
validation classes the table's selection relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.study.spec import load_study

STUDIES = Path(__file__).resolve().parents[2] / "benchmarks" / "studies"


@pytest.mark.parametrize("name, runs", [("one-shot", 2 * 2 * 2 * 3), ("one-shot-layers", 2 * 2 * 2 * 2 * 3)])
def test_one_shot_studies_expand(name, runs):
    study = load_study(STUDIES / f"{name}.toml")
    assert study.name == name and study.count_by_strategy() == {"siamese": runs}
    specs = [spec for _, spec in study.runs]
    assert {spec.val_classes for spec in specs} == {"0,2", "2,3"} and {spec.tasks for spec in specs} == {1000}
    assert {spec.patience for spec in specs} == {10}  # the size rule's early stopping picks the length
