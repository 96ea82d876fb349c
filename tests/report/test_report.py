"""write_report and `transferlab report` on every kind of store: full, half-finished, only failed, empty,
one size / one seed, a missing directory; the page is self-contained and the folder replaced whole."""

from __future__ import annotations

import json
import re

import pytest

from transferlab.cli import main
from transferlab.errors import TransferlabError
from transferlab.report import write_report
from transferlab.study.store import Store

from .conftest import spec

FIGURE_KINDS = ("gain_curves", "size_curves", "depth_heatmaps", "depth_lines", "learning_curves")


def _images(page: str) -> list[str]:
    return re.findall(r'<img src="([^"]*)"', page)


def test_full_report_files_and_page(full_study):
    directory, _ = full_study
    folder = directory / "report"
    page = (folder / "report.html").read_text()
    pngs = sorted(p.stem for p in folder.glob("*.png"))
    assert sorted(p.stem for p in folder.glob("*.pdf")) == pngs
    for kind in FIGURE_KINDS:
        assert sum(stem.startswith(kind) for stem in pngs) == 2, kind  # one per task (one sweep each)
    images = _images(page)
    assert len(images) == len(pngs) and all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from elsewhere
    assert "<link" not in page and "<script" not in page
    for name in ("best_configs", "accuracy_by_role", "gains"):
        assert (folder / f"{name}.csv").is_file() and (folder / f"{name}.tex").is_file()
    assert (folder / "aggregates.csv").is_file() and (folder / "runs.csv").is_file()
    # spec, counts, failed run with its reason, pending state, summary with numbers
    assert "name = &quot;synthetic-fashion&quot;" in page
    assert "<td>failed</td><td>1</td>" in page and "<td>pending</td><td>1</td>" in page
    assert "TrainingFailed: loss is NaN at epoch 3" in page
    assert "The study is not finished" in page
    summary = (folder / "summary.md").read_text()
    assert summary.index("## Answer") < summary.index("## Status")  # the answer comes first
    assert re.search(
        r"At 0\.1% \(54 images\), the best transfer configuration \(.*\) scores 0\.\d{3} ± "
        r"0\.\d{3} \(n=3\); against training from scratch",
        summary,
    )
    assert "against scratch with data augmentation" in summary and "95% CI" in summary
    assert (
        "fashion-mnist: transfer vs training from scratch — better at 0.1%–100%; vs scratch with "
        "augmentation — better at 0.1%–100%."
    ) in summary
    assert page.index('id="answer"') < page.index('id="summary"') < page.index('id="runs"')
    assert "transferred and frozen (SnT)" in summary and "A→B" not in summary


def test_missing_directory_is_an_error_and_creates_nothing(tmp_path):
    missing = tmp_path / "nope"
    with pytest.raises(TransferlabError, match="does not exist"):
        write_report(missing)
    assert not missing.exists()
    empty_dir = tmp_path / "not-a-study"
    empty_dir.mkdir()
    with pytest.raises(TransferlabError, match="study.sqlite is missing"):
        write_report(empty_dir)
    assert list(empty_dir.iterdir()) == []


def test_empty_study_says_so(tmp_path):
    Store(tmp_path).close()
    page = write_report(tmp_path).read_text()
    assert "This study has no runs yet" in page and "No figures: the study has no runs yet" in page
    assert _images(page) == []
    assert sorted(p.name for p in (tmp_path / "report").iterdir()) == [
        "report.html",
        "runs.csv",
        "summary.md",
    ]


def test_only_failed_runs_lists_the_reasons(builder):
    builder.fail(spec(size=0.1), "CUDA out of memory <on device 0>")
    builder.fail(spec(size=0.01, seed=1), "NaN loss at epoch 2")
    page = write_report(builder.store.directory).read_text()
    assert "No figures: no run has finished with a test accuracy" in page
    assert "CUDA out of memory &lt;on device 0&gt;" in page and "NaN loss at epoch 2" in page  # escaped
    assert "<td>failed</td><td>2</td>" in page


def test_single_size_and_single_seed_say_no_ci(builder):
    builder.add(spec(size=0.01), test=0.40, val=0.41, n_train=540, n_classes=10, epochs_history=4)
    builder.add(
        spec(strategy="augment", augment="mirror", size=0.01), test=0.5, val=0.52, n_train=540, n_classes=10
    )
    for k in range(2):
        builder.add(
            spec(
                strategy="finetune", backbone="efficientnet_lite0.in1k", frozen=k, backbone_lr=1e-4, size=0.01
            ),
            test=0.6 + k / 50,
            val=0.6 + k / 40,
            n_train=540,
            n_classes=10,
        )
    folder = write_report(builder.store.directory).parent
    page = (folder / "report.html").read_text()
    assert len(_images(page)) == 5  # gain, size curves, heatmaps, lines, learning curves
    summary = (folder / "summary.md").read_text()
    assert "0.620 (n=1)" in summary and "Only one training size" in summary


def test_single_size_figure_notes_no_ci(builder):
    from transferlab.report.aggregate import load_study
    from transferlab.report.figures import size_curves

    builder.add(spec(size=0.01), test=0.40, val=0.41, n_train=540, n_classes=10)
    (task,) = load_study(builder.store).tasks
    texts = [t.get_text() for t in size_curves(task).axes[0].texts]
    assert any("no 95% CI can be drawn" in t and "a single training size" in t for t in texts)


def test_report_replaces_the_folder_and_half_finished_studies_work(builder):
    directory = builder.store.directory
    builder.pending(spec(size=0.1))
    stale = directory / "report" / "stale.png"
    stale.parent.mkdir()
    stale.write_bytes(b"old")
    builder.add(spec(size=0.1, seed=1), test=0.7, val=0.7, n_train=5400, n_classes=10)
    page = write_report(directory).read_text()
    assert not stale.exists()
    assert "<td>pending</td><td>1</td>" in page and "every number below may change" in page
    assert not [p for p in directory.iterdir() if p.name.startswith(".report")]  # no staging left behind


def test_cli_report_and_its_errors(capsys, tmp_path):
    code = main(["report", str(tmp_path / "missing")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    Store(tmp_path).close()
    code = main(["report", str(tmp_path), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["report"] == str(tmp_path / "report" / "report.html")
    assert (tmp_path / "report" / "report.html").is_file()


def test_dollar_signs_in_a_dataset_path_are_text_not_math(builder):
    """A path with two '$' was read as math markup (mathtext) in figure titles: the report failed to render."""
    dataset = "folder:/data/$v_1_2/$HOME"  # as mathtext: a double subscript, an error
    for size, accuracy, n_train in ((0.01, 0.4, 540), (0.1, 0.6, 5400)):
        builder.add(spec(dataset=dataset, size=size), accuracy, accuracy, n_train, 10, epochs_history=4)
    folder = write_report(builder.store.directory).parent
    assert len(_images((folder / "report.html").read_text())) >= 2
