"""Every preset in examples/ expands into a valid grid with the run counts its header promises."""

from __future__ import annotations

from pathlib import Path

import pytest

from transferlab.study.spec import load_study

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXPECTED = {  # name -> runs by strategy
    "quickstart": {"extract": 18, "scratch": 18, "augment": 18},
    "seed-clothes": {
        "extract": 3 * 2 * 3 * 4 * 3,
        "scratch": 12,
        "augment": 12,
    },  # the 72-config grid x 3 seeds
    "seed-domains": {"snt": (3 * 10 + 1) * 9 * 3, "extract": 27},
    "seed-domains-cifar10": {"snt": (3 * 10 + 1) * 9 * 3, "extract": 27},
    "seed-yosinski": {"snt": 2 * 2 * 4 * 3 * (1 + 7 + 7)},
    "seed-siamese": {"siamese": (3 * 2 + 1 + 2 + 3) * 3},  # (a) N x pairs, 6 -> 4, head fc x 2; (b) 3 pairs
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_preset_expands(name):
    study = load_study(EXAMPLES / f"{name}.toml")
    assert study.name == name and study.description
    assert study.count_by_strategy() == EXPECTED[name]
    assert (EXAMPLES / f"{name}.toml").read_text().startswith(f"# {name} —")  # states what it reproduces


def test_every_example_is_covered():
    assert {p.stem for p in EXAMPLES.glob("*.toml")} == set(EXPECTED)
