"""Aggregation: mean/std/n/95% t-interval against numpy and scipy by hand, pooling over seeds and both
transfer directions, gains, and choosing on validation (never on test)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from transferlab.report.aggregate import (
    Config,
    Gain,
    SizeKey,
    Stat,
    best_by_validation,
    depth_sweeps,
    load_study,
    task_label,
)
from transferlab.study.export import open_study

from .conftest import spec


def test_stat_matches_numpy_and_the_t_distribution():
    values = [0.61, 0.64, 0.58, 0.66]
    stat = Stat.of(values)
    std = np.std(values, ddof=1)
    half = stats.t.ppf(0.975, df=3) * std / math.sqrt(4)
    assert stat.n == 4
    assert stat.mean == pytest.approx(np.mean(values), abs=1e-12)
    assert stat.std == pytest.approx(std, abs=1e-12)
    assert stat.ci_half == pytest.approx(half, abs=1e-12)
    low, high = stats.t.interval(0.95, 3, loc=np.mean(values), scale=stats.sem(values))
    assert (stat.ci_low, stat.ci_high) == (pytest.approx(low), pytest.approx(high))


def test_a_single_value_has_no_spread():
    stat = Stat.of([0.7])
    assert (stat.mean, stat.std, stat.n, stat.ci_half, stat.ci_low) == (0.7, None, 1, None, None)
    assert stat.text() == "0.700 (n=1)"


def test_gain_is_ratio_and_difference_with_a_welch_interval():
    transfer, baseline = [0.75, 0.77, 0.76], [0.50, 0.52, 0.47]
    gain = Gain.between(Stat.of(transfer), Stat.of(baseline))
    assert gain.absolute == pytest.approx(np.mean(transfer) - np.mean(baseline))
    assert gain.relative == pytest.approx(np.mean(transfer) / np.mean(baseline))
    assert gain.percent == pytest.approx(100 * (np.mean(transfer) / np.mean(baseline) - 1))
    welch = stats.ttest_ind(transfer, baseline, equal_var=False).confidence_interval(0.95)
    assert gain.ci_half == pytest.approx((welch.high - welch.low) / 2)
    assert Gain.between(Stat.of([0.7]), Stat.of([0.5, 0.6])).ci_half is None  # n=1: no interval
    assert Gain.between(Stat.of([0.7]), Stat.of([0.0])).relative is None  # ratio to zero is undefined


def test_gain_on_shared_splits_is_the_paired_interval():
    # Split-to-split variation shared by both arms (split "b" is hard for both) cancels in the paired CI.
    transfer, baseline, splits = [0.80, 0.70, 0.75], [0.78, 0.67, 0.74], ["a", "b", "c"]
    paired = Gain.between(Stat.of(transfer, splits), Stat.of(baseline, splits))
    expected = stats.ttest_rel(transfer, baseline).confidence_interval(0.95)
    assert paired.paired and paired.method == "paired"
    assert paired.ci_half == pytest.approx((expected.high - expected.low) / 2)
    assert paired.absolute == pytest.approx(np.mean(transfer) - np.mean(baseline))
    welch = Gain.between(Stat.of(transfer), Stat.of(baseline))
    assert not welch.paired and paired.ci_half < welch.ci_half / 3
    # Pairing follows the keys, not the order of the values.
    shuffled = Gain.between(Stat.of(transfer[::-1], splits[::-1]), Stat.of(baseline, splits))
    assert shuffled.ci_half == pytest.approx(paired.ci_half)
    # Different splits, a repeated split or a missing key: two independent samples (Welch).
    for other_keys in (["a", "b", "d"], ["a", "a", "c"]):
        assert not Gain.between(Stat.of(transfer, splits), Stat.of(baseline, other_keys)).paired
    assert not Gain.between(Stat.of(transfer, splits), Stat.of(baseline)).paired
    with pytest.raises(ValueError, match="3 values but 2 keys"):
        Stat.of(transfer, ["a", "b"])


def test_config_roles_and_snt_variants():
    def config(**changes):
        return Config.of(spec(**changes))

    assert config(strategy="scratch").role == "baseline"
    assert config(strategy="scratch", augment="mirror").role == "augmentation"
    assert config(strategy="augment", augment="mirror,noise").role == "augmentation"
    assert config(strategy="extract", head="fc2").role == "transfer"
    assert config(strategy="finetune", frozen=2).role == "transfer"
    assert (
        config(strategy="snt", transfer=0, frozen=0).variant,
        config(strategy="snt", transfer=0, frozen=0).role,
    ) == ("base", "baseline")
    assert config(strategy="snt", transfer=3, frozen=3).variant == "frozen"
    assert config(strategy="snt", transfer=3, frozen=0).variant == "fine-tuned"
    assert config(strategy="snt", transfer=3, frozen=1).variant == "1 of 3 frozen"
    # repeats, sizes and the device are not part of a configuration
    assert config(seed=1, swap=True, size=0.1, device="cuda") == config(seed=2, size=0.5)


def test_sizes_and_task_labels():
    assert SizeKey.of(spec(size=0.01)).label == "1%"
    assert SizeKey.of(spec(size=None, per_class=20)).label == "20/class"
    assert task_label(spec()) == "fashion-mnist"
    assert task_label(spec(target="cars,trucks", source="cats,dogs")) == "fashion-mnist, classes cars,trucks"
    assert task_label(spec(source="0,1,2")) == "fashion-mnist, all classes but 0,1,2"
    assert (
        task_label(spec(strategy="snt", transfer=1))
        == "fashion-mnist, random half of the classes (target side)"
    )


def test_cells_pool_seeds_and_both_directions(full_study):
    directory, written = full_study
    with open_study(directory) as store:
        study = load_study(store)
    task = next(t for t in study.tasks if t.label.startswith("digits"))
    cell = next(
        c
        for c in task.cells
        if c.size == SizeKey("per_class", 10)
        and c.config.get("transfer") == 2
        and c.config.get("frozen") == 2
    )
    tests = [written[("snt", 10, 2, 2, swap, seed)][0] for swap in (False, True) for seed in (0, 1, 2)]
    vals = [written[("snt", 10, 2, 2, swap, seed)][1] for swap in (False, True) for seed in (0, 1, 2)]
    assert (cell.test.n, cell.directions) == (6, 2)
    assert cell.test.mean == pytest.approx(np.mean(tests))
    assert cell.test.std == pytest.approx(np.std(tests, ddof=1))
    assert cell.val.mean == pytest.approx(np.mean(vals))
    assert cell.n_train == 50 and cell.n_classes == 5
    assert [s.label for s in task.sizes] == ["10/class", "30/class", "90/class"]
    fashion = next(t for t in study.tasks if t.label == "fashion-mnist")
    assert [s.label for s in fashion.sizes] == ["0.1%", "1%", "10%", "100%"]  # ordered by training images
    assert fashion.chance == pytest.approx(0.1)


def test_choice_reads_validation_never_test(builder):
    # lr 1e-2 has the better test accuracy, lr 1e-3 the better validation accuracy: 1e-3 must be chosen.
    for seed in range(2):
        builder.add(
            spec(strategy="extract", head="fc1", lr=1e-2, size=0.1, seed=seed),
            test=0.95,
            val=0.70,
            n_train=5400,
            n_classes=10,
        )
        builder.add(
            spec(strategy="extract", head="fc1", lr=1e-3, size=0.1, seed=seed),
            test=0.80,
            val=0.90,
            n_train=5400,
            n_classes=10,
        )
    study = load_study(builder.store)
    (task,) = study.tasks
    chosen = task.best(task.sizes[0], role="transfer")
    assert chosen.config.get("lr") == 1e-3 and chosen.test.mean == pytest.approx(0.80)
    assert best_by_validation([]) is None


def test_unusable_done_runs_count_as_failed(builder):
    builder.add(spec(size=0.1), test=0.5, val=0.5, n_train=10, n_classes=10)
    builder.add(
        spec(size=0.1, seed=1), test=0.5, val=0.5, n_train=10, n_classes=10, status="failed", error="NaN loss"
    )
    builder.add(spec(size=0.1, seed=2), test=None, val=0.5, n_train=10, n_classes=10)
    builder.fail(spec(size=0.1, seed=3), "killed")
    study = load_study(builder.store)
    assert study.n_usable == 1
    assert sorted(f.error for f in study.failed) == ["NaN loss", "finished without a test accuracy", "killed"]
    assert study.tasks[0].cells[0].test.n == 1


def test_depth_sweeps_measure_gains_against_the_base(full_study):
    directory, _ = full_study
    with open_study(directory) as store:
        study = load_study(store)
    task = next(t for t in study.tasks if t.label.startswith("digits"))
    (sweep,) = depth_sweeps(task)
    assert sweep.depths == [0, 1, 2, 3]
    assert list(sweep.panels) == ["transferred and frozen (SnT)", "transferred and fine-tuned (SnT+)"]
    size = SizeKey("per_class", 30)
    frozen2 = sweep.panels["transferred and frozen (SnT)"][(2, size)]
    base = sweep.reference[size]
    assert base.config.variant == "base"
    assert sweep.gain(frozen2).absolute == pytest.approx(frozen2.test.mean - base.test.mean)
    fashion = next(t for t in study.tasks if t.label == "fashion-mnist")
    (finetune,) = depth_sweeps(fashion)
    assert finetune.depths == [0, 1, 2, 3]
    assert all(c.config.strategy == "scratch" for c in finetune.reference.values())


def test_cells_sum_the_repeats_confusion_counts_and_the_report_draws_them(builder, tmp_path):
    from transferlab.report import write_report

    def confusion(diagonal: int, off: int) -> dict:
        return {"classes": ["a", "b"], "counts": [[diagonal, off], [off, diagonal]]}

    for seed, (d, o) in enumerate([(8, 2), (6, 4)]):
        builder.add(
            spec(strategy="scratch", seed=seed, per_class=10, size=None),
            test=0.7,
            val=0.7,
            n_train=20,
            n_classes=2,
            test_confusion=confusion(d, o),
        )
        builder.add(
            spec(strategy="extract", backbone="efficientnet_lite0.in1k", seed=seed, per_class=10, size=None),
            test=0.8,
            val=0.8,
            n_train=20,
            n_classes=2,
            test_confusion=confusion(9, 1),
        )
    # A cell with a repeat that stored none (an older row) has no confusion.
    builder.add(
        spec(strategy="augment", augment="mirror,noise", seed=0, per_class=10, size=None),
        test=0.6,
        val=0.6,
        n_train=20,
        n_classes=2,
        test_confusion=confusion(7, 3),
    )
    builder.add(
        spec(strategy="augment", augment="mirror,noise", seed=1, per_class=10, size=None),
        test=0.6,
        val=0.6,
        n_train=20,
        n_classes=2,
    )
    study = load_study(builder.store)
    by_strategy = {c.config.strategy: c for c in study.tasks[0].cells}
    assert by_strategy["scratch"].confusion == {
        "classes": ["a", "b"],
        "counts": [[14, 6], [6, 14]],
        "repeats": 2,
    }
    assert by_strategy["augment"].confusion is None
    builder.close()
    write_report(builder.store.directory)
    assert (builder.store.directory / "report" / "confusion_1-fashion-mnist.png").exists()
