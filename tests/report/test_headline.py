"""The report answers first (issue 17): per size, the best transfer against scratch and augmentation with
the gain's 95% interval in plain words and a recommendation; lines that never join two configurations; a
gain-vs-size figure; honest wording when transfer loses; curve fits that do not overreach; cost,
reproduction and every run on the page."""

from __future__ import annotations

import csv
import re

import numpy as np
import pytest
from scipy import stats

from transferlab.report import write_report
from transferlab.report.aggregate import Gain, Stat, load_study
from transferlab.report.figures import gain_curves, size_curves
from transferlab.report.headline import answers, overview, sentence, verdict
from transferlab.report.summary import summarize, to_markdown

from .conftest import spec

EXTRACT = {"strategy": "extract", "backbone": "efficientnet_lite0.in1k", "head": "logreg"}
# size -> (scratch tests, extract tests) over seeds 0-2: a clear win, a tie, a clear loss.
TESTS = {
    5: ((0.50, 0.51, 0.52), (0.70, 0.71, 0.72)),
    20: ((0.70, 0.74, 0.66), (0.71, 0.69, 0.73)),
    50: ((0.85, 0.86, 0.87), (0.75, 0.76, 0.77)),
}


def _win_tie_loss(builder, seeds=(0, 1, 2), sizes=(5, 20, 50)):
    for per_class in sizes:
        scratch, extract = TESTS[per_class]
        for i in seeds:
            common = {"per_class": per_class, "size": None, "seed": i}
            builder.add(
                spec(strategy="scratch", **common),
                scratch[i],
                scratch[i],
                10 * per_class,
                10,
                total_seconds=2.0 + i,
            )
            builder.add(
                spec(**EXTRACT, **common), extract[i], extract[i], 10 * per_class, 10, total_seconds=0.5
            )
    return load_study(builder.store)


def test_verdicts_follow_the_interval_of_the_gain():
    a, b = Stat.of([0.70, 0.71, 0.72]), Stat.of([0.50, 0.51, 0.52])
    assert verdict(Gain.between(a, b)) == "better" and verdict(Gain.between(b, a)) == "worse"
    assert (
        verdict(Gain.between(Stat.of([0.71, 0.69, 0.73]), Stat.of([0.70, 0.74, 0.66])))
        == "no detectable difference"
    )
    assert verdict(Gain.between(Stat.of([0.9]), Stat.of([0.1]))) == "cannot tell"  # n = 1: no interval


def test_headline_per_size_in_plain_words(builder):
    study = _win_tie_loss(builder)
    (task,) = study.tasks
    found = answers(task)
    assert [a.size.label for a in found] == ["5/class", "20/class", "50/class"]
    assert [a.comparison("baseline").verdict for a in found] == [
        "better",
        "no detectable difference",
        "worse",
    ]
    gain = found[1].comparison("baseline").gain
    welch = stats.ttest_ind(TESTS[20][1], TESTS[20][0], equal_var=False).confidence_interval(0.95)
    assert gain.absolute - gain.ci_half == pytest.approx(
        welch.low
    ) and gain.absolute + gain.ci_half == pytest.approx(welch.high)
    texts = [sentence(task, a) for a in found]
    assert "transfer is better, +20.0 points (95% CI" in texts[0] and "Use transfer" in texts[0]
    assert "no detectable difference, +1.0 points (95% CI -" in texts[1]
    assert "Choose on cost: extract is cheapest" in texts[1]  # 0.5 s against scratch's 3 s per run
    assert "transfer is worse, -10.0 points" in texts[2] and "Do not use transfer here: scratch" in texts[2]
    assert all("no scratch with data augmentation runs to compare with" in t for t in texts)
    assert overview(task, found) == (
        "fashion-mnist: transfer vs training from scratch — better at 5/class; no "
        "detectable difference at 20/class; worse at 50/class."
    )


def test_losing_transfer_is_not_called_a_shrinking_gain(builder):
    study = _win_tie_loss(builder, sizes=(20, 50))  # a tie, then a loss
    text = to_markdown(summarize(study))
    assert "shrinks" not in text and "grows" not in text and "1× as many" not in text
    assert "goes from +0.010 (no detectable difference) at 20/class (200 images) to -0.100 (worse)" in text
    assert "does not beat the baseline at the same size" not in text  # 0.71 > 0.70 at 20/class by the means
    assert "first matched by the baseline at 500 images (0.860), 2.5× as many labels (by the means" in text


def test_transfer_below_the_baseline_at_the_smallest_size_saves_no_labels(builder):
    text = to_markdown(summarize(_win_tie_loss(builder, sizes=(50,))))
    assert "does not beat the baseline at the same size (0.860): no labels are saved" in text
    assert "as many labels" not in text


def test_single_seed_answers_cannot_tell(builder):
    study = _win_tie_loss(builder, seeds=(0,))
    (task,) = study.tasks
    first = answers(task)[0]
    assert first.comparison("baseline").verdict == "cannot tell"
    assert "Cannot recommend" in first.recommendation and "no CI" in sentence(task, first)
    figure = gain_curves(task)
    assert any("no 95% CI can be drawn" in t.get_text() for t in figure.axes[0].texts)


def test_a_line_never_joins_two_layers_and_the_subtitle_names_only_what_was_chosen(builder):
    # The case: logreg on unit 5 wins validation at 5 and 50/class, on the top unit at 20/class.
    for per_class, top_val in ((5, 0.6), (20, 0.8), (50, 0.6)):
        for seed in (0, 1):
            common = {"per_class": per_class, "size": None, "seed": seed}
            builder.add(spec(**EXTRACT, **common), top_val, top_val, 10 * per_class, 10)
            builder.add(spec(**EXTRACT, layer=5, **common), 0.7, 0.7, 10 * per_class, 10)
            for lr, val in ((1e-3, 0.5), (1e-2, 0.45)):  # lr is chosen on validation inside the scratch line
                builder.add(spec(lr=lr, **common), val, val, 10 * per_class, 10)
            builder.add(
                spec(**{**EXTRACT, "head": "fc2"}, activation="relu", init="uniform", **common),
                0.65,
                0.65,
                10 * per_class,
                10,
            )
    (task,) = load_study(builder.store).tasks
    lines = task.lines()
    extract = [cells for key, cells in lines.items() if key[0] == "extract"]
    assert len(extract) == 3  # logreg top, logreg unit 5, fc2
    for cells in extract:
        assert len({c.config.get("layer") for c in cells.values()}) == 1 and len(cells) == 3
    labels = sorted(task.describe(next(iter(c.values())).config, full=False) for c in extract)
    backbone = "extract · backbone=efficientnet_lite0.in1k · "  # named: scratch's backbone differs
    assert labels == [f"{backbone}head=fc2", f"{backbone}head=logreg", f"{backbone}head=logreg · layer=5"]
    assert task.tuned_fields() == ["lr"]  # not activation / init (told by the head), not layer
    title = size_curves(task).axes[0].get_title()
    assert "each point: the best of lr on validation" in title and "activation" not in title


def test_size_curve_is_zoomed_to_the_data_and_notes_chance(builder):
    (task,) = _win_tie_loss(builder).tasks
    ax = size_curves(task).axes[0]
    low, high = ax.get_ylim()
    assert 0.4 < low < 0.5 and 0.88 < high < 0.95  # the data span 0.50-0.87, chance is 0.10
    assert "chance (1/10 = 0.10) is below the axis" in ax.get_title()
    assert not [line for line in ax.get_lines() if list(line.get_ydata()) == [0.1, 0.1]]


def test_gain_figure_has_the_gain_its_band_and_zero(builder):
    (task,) = _win_tie_loss(builder).tasks
    ax = gain_curves(task).axes[0]
    series = next(line for line in ax.get_lines() if "best baseline" in line.get_label())
    np.testing.assert_allclose(series.get_ydata(), [20.0, 1.0, -10.0], atol=1e-4)
    assert any(list(line.get_ydata()) == [0.0, 0.0] for line in ax.get_lines())  # the zero line
    assert ax.collections  # the CI band
    assert gain_curves(load_study(builder.store).tasks[0]) is not None
    assert "percentage points" in ax.get_ylabel()


def test_page_answer_cost_reproduce_and_all_runs(builder):
    _win_tie_loss(builder)
    builder.fail(spec(size=0.1, seed=5), "NaN loss")
    directory = builder.store.directory
    (directory / "spec.toml").write_text('name = "x"\n')
    page = write_report(directory).read_text(encoding="utf-8")
    folder = directory / "report"
    assert page.index('id="answer"') < page.index("<nav>") < page.index('id="runs"')
    answer = page[page.index('id="answer"') : page.index("<nav>")]
    assert "better at 5/class; no detectable difference at 20/class; worse at 50/class" in answer
    assert "Transfer − scratch" in answer and "Recommendation" in answer and "gain_curves_1" in answer
    assert "test confusion matrices of these arms" in answer  # where the confusion matrices are
    cost = {r["strategy"]: r for r in csv.DictReader(open(folder / "cost.csv", encoding="utf-8"))}
    assert float(cost["scratch"]["seconds_total"]) == pytest.approx(3 * (2 + 3 + 4))
    assert (
        float(cost["extract"]["seconds_per_run_mean"]) == pytest.approx(0.5) and cost["all"]["runs"] == "18"
    )
    assert "Seconds per run" in page and "3.0 ± 0.9 (n=9)" in page
    assert f"transferlab study {directory / 'spec.toml'} --dir {directory}-again" in page
    assert "transferlab code version</b>: 0.1.0 (18 runs)" in page and "torch threads per run" in page
    all_runs = page[page.index('id="all-runs"') : page.index('id="runs"')]
    assert all_runs.count("<tr>") == 1 + 19 and "NaN loss" not in all_runs and ">failed<" in all_runs
    assert "RG vs" not in page and "AG vs" not in page
    assert "## Reproduce" in (folder / "summary.md").read_text()


def test_curve_fit_hides_what_it_cannot_tell(builder):
    # Still rising steeply at the largest size: the ceiling runs to its bound, 1.
    for per_class, accuracy in ((5, 0.30), (20, 0.50), (50, 0.62)):
        for seed, noise in enumerate((-0.01, 0.0, 0.01)):
            builder.add(
                spec(**EXTRACT, per_class=per_class, size=None, seed=seed),
                accuracy + noise,
                accuracy + noise,
                10 * per_class,
                10,
            )
    folder = write_report(builder.store.directory).parent
    (row,) = list(csv.DictReader(open(folder / "learning_curve_fits.csv", encoding="utf-8")))
    assert float(row["ceiling_c"]) == pytest.approx(1.0) and row["ceiling_determined"] == "False"
    assert row["ceiling_text"].startswith("not determined")
    assert row["labels_for_99"].startswith("not estimated: beyond the reliable range (5-100 per class")
    assert not re.search(r"about [\d,]{9,} labels", (folder / "report.html").read_text(encoding="utf-8"))


def test_empty_and_failed_only_studies_answer_that_there_is_nothing_yet(builder, tmp_path):
    from transferlab.study.store import Store

    Store(tmp_path / "empty").close()
    page = write_report(tmp_path / "empty").read_text(encoding="utf-8")
    assert "This study has no runs yet" in page[page.index('id="answer"') : page.index("<nav>")]
    builder.fail(spec(size=0.1), "NaN loss")
    page = write_report(builder.store.directory).read_text(encoding="utf-8")
    assert "No run has finished with a test accuracy" in page[page.index('id="answer"') : page.index("<nav>")]
    assert "No finished run recorded its time" in page


def test_a_depth_sweep_never_joins_two_fine_tuning_recipes(builder):
    from transferlab.report.aggregate import depth_sweeps

    finetune = {"strategy": "finetune", "backbone": "efficientnet_lite0.in1k", "head": "linear"}
    for size in (0.01, 0.1):
        for frozen in (0, 2):
            for head_init, val in ((None, 0.6), ("probe", 0.7 if frozen else 0.5)):
                builder.add(
                    spec(**finetune, frozen=frozen, head_init=head_init, size=size), val, val, 540, 10
                )
    (task,) = load_study(builder.store).tasks
    sweeps = depth_sweeps(task)
    assert sorted(s.title for s in sweeps) == [
        "finetune · backbone=efficientnet_lite0.in1k",
        "finetune · backbone=efficientnet_lite0.in1k · head_init=probe",
    ]
    for sweep in sweeps:
        (cells,) = sweep.panels.values()
        assert len({c.config.get("head_init") for c in cells.values()}) == 1 and sweep.tuned == []


def test_learning_curves_flag_runs_still_improving_at_their_last_epoch():
    from transferlab.report.figures import _still_improving

    rising = [{"epoch": e, "val_accuracy": 0.5 + 0.01 * e} for e in range(1, 6)]
    peaked = [{"epoch": e, "val_accuracy": v} for e, v in enumerate((0.5, 0.7, 0.6), start=1)]
    assert _still_improving([rising, peaked, rising[:1]]) == 1  # one validated epoch says nothing
