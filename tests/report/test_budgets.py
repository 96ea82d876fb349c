"""Tuning budgets (issue 15, part 4): each arm's choice on validation states how many configurations it
was chosen from and what varied among them, in the tables and, when the compared arms differ, the summary."""

from __future__ import annotations

import pytest

from transferlab.report.aggregate import Choice, load_study
from transferlab.report.html import render
from transferlab.report.summary import summarize, to_markdown
from transferlab.report.tables import all_tables, best_configs, gains

from .conftest import spec

LRS = (1e-2, 1e-3, 1e-4)
EXTRACT = {
    "strategy": "extract",
    "backbone": "efficientnet_lite0.in1k",
    "head": "fc2",
    "activation": "relu",
    "init": "uniform",
}


def _study(builder, scratch_lrs, extract_lrs=LRS):
    """Two sizes x two seeds; scratch and extract each over their own lr grid (val ranks lr 1e-3 first)."""
    for size in (0.01, 1.0):
        for seed in (0, 1):
            for i, lr in enumerate(scratch_lrs):
                scratch = spec(strategy="scratch", lr=lr, size=size, seed=seed)
                builder.add(scratch, 0.5, 0.5 - 0.01 * i, 500, 10)
            for lr in extract_lrs:
                val = 0.8 if lr == 1e-3 else 0.7
                builder.add(spec(**EXTRACT, lr=lr, size=size, seed=seed), val - 0.05, val, 500, 10)
    return load_study(builder.store)


def test_unequal_budgets_are_counted_in_the_tables_and_flagged_in_the_summary(builder):
    study = _study(builder, scratch_lrs=(1e-3,))
    best = {(r["strategy"], r["size"]): r for r in best_configs(study).rows}
    assert len(best) == 4
    for size in ("1%", "100%"):
        assert best[("extract", size)]["n_configs"] == 3
        assert best[("extract", size)]["tuned"] == "lr ∈ {0.0001, 0.001, 0.01}"
        assert "lr=0.001" in best[("extract", size)]["configuration"]  # the validation choice
        assert (best[("scratch", size)]["n_configs"], best[("scratch", size)]["tuned"]) == (1, "")
    for row in gains(study).rows:
        counts = (row["transfer_n_configs"], row["baseline_n_configs"], row["augmentation_n_configs"])
        assert counts == (3, 1, 0)  # no augmentation runs: nothing to choose from
    table = gains(study)
    assert [column.render(table.rows[0]) for column in table.display][-1] == "3 / 1 / –"
    best_table = best_configs(study)
    chosen_from = next(c for c in best_table.display if c.header == "Chosen from")
    assert chosen_from.render(best[("extract", "1%")]) == "3: lr ∈ {0.0001, 0.001, 0.01}"
    assert "$\\in$" in best_table.latex()

    text = to_markdown(summarize(study))
    flagged = [line for line in text.splitlines() if "Unequal tuning budgets" in line]
    assert len(flagged) == 1  # one point per task, its sizes joined
    assert (
        "transfer from 3 configurations (lr ∈ {0.0001, 0.001, 0.01}), baseline from 1 configuration at "
        "1%–100%"
    ) in flagged[0]
    page = render(study, summarize(study), [], all_tables(study), "test")
    assert "Unequal tuning budgets" in page and "Chosen from" in page


def test_equal_budgets_are_not_flagged(builder):
    study = _study(builder, scratch_lrs=LRS)
    assert {r["n_configs"] for r in best_configs(study).rows} == {3}
    assert all((r["transfer_n_configs"], r["baseline_n_configs"]) == (3, 3) for r in gains(study).rows)
    assert "tuning budget" not in to_markdown(summarize(study))


def test_a_choice_counts_only_configurations_with_a_validation_accuracy_and_lists_set_values(builder):
    # finetune leaves head's activation/init unset; extract leaves frozen unset: neither is "tuned" on its own
    for lr in LRS:
        builder.add(spec(**EXTRACT, lr=lr), 0.7, 0.7, 500, 10)
    builder.add(spec(strategy="finetune", backbone="efficientnet_lite0.in1k", frozen=2), 0.9, 0.9, 500, 10)
    builder.add(
        spec(strategy="finetune", backbone="efficientnet_lite0.in1k", frozen=3),
        0.95,
        0.95,
        500,
        10,
        val_accuracy=None,
    )
    task = load_study(builder.store).tasks[0]
    choice = task.choice(task.sizes[0], role="transfer")
    assert isinstance(choice, Choice) and choice.cell.config.strategy == "finetune"
    assert choice.n_configs == 4  # the finetune run without a validation accuracy could not compete
    assert choice.tuned == {
        "head": ("fc2", "linear"),
        "lr": (0.0001, 0.001, 0.01),
        "strategy": ("extract", "finetune"),
    }
    assert choice.text() == (
        "4 configurations (head ∈ {fc2, linear}; lr ∈ {0.0001, 0.001, 0.01}; strategy ∈ {extract, finetune})"
    )
    assert task.choice(task.sizes[0], role="baseline") is None


@pytest.mark.parametrize("n, text", [(1, "1 configuration"), (2, "2 configurations (lr ∈ {0.001, 0.01})")])
def test_choice_text_counts_in_words(builder, n, text):
    for lr in LRS[:n]:
        builder.add(spec(lr=lr), 0.5, 0.5, 500, 10)
    task = load_study(builder.store).tasks[0]
    assert task.choice(task.sizes[0]).text() == text
