"""The report's learning-curve fits on the synthetic full study (accuracies from a known saturating curve):
a figure per task, the fits table with labels-needed answers and their extrapolation verdicts."""

from __future__ import annotations

import csv


def test_learning_curve_figure_and_table(full_study):
    directory, _ = full_study
    folder = directory / "report"
    figures = sorted(p.name for p in folder.glob("curve_fit_*.png"))
    assert len(figures) == 2  # both tasks have lines with >= 3 sizes (4 fractions; 10/30/90 per class)
    rows = list(csv.DictReader(open(folder / "learning_curve_fits.csv", encoding="utf-8")))
    lines = {(r["task"], r["line"]) for r in rows}
    assert ("fashion-mnist", "scratch · backbone=cifar_cnn") in lines and len(rows) >= 5
    for r in rows:
        chance = 0.2 if r["task"].startswith("digits") else 0.1
        assert chance <= float(r["ceiling_c"]) <= 1.0 and float(r["exponent_b"]) > 0
        assert r["labels_for_90"].startswith(
            ("about", "not reached: above the fitted ceiling", "not estimated")
        )
    scratch = next(r for r in rows if r["line"] == "scratch · backbone=cifar_cnn")
    # The slow-learning baseline would need ~90,000 labels per class for 90%: far beyond the 5,400 measured,
    # so no number is given, only the reliable range.
    assert scratch["labels_for_90"] == (
        "not estimated: beyond the reliable range (5.4-10800 per class, up to 2x the largest size measured)"
    )
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert "learning-curve fits" in page and "learning_curve_fits" in page
