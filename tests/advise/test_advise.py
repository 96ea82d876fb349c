"""advise on real data (digits at 32 px): ranking, similarity, placement, a valid recommendation; the
candidate grammar's errors; --validate against a study store whose runs name real candidates."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from scipy.stats import kendalltau

from transferlab.advise import SourceSettings, advise, validate
from transferlab.advise.sources import parse_candidate
from transferlab.errors import TransferlabError
from transferlab.runs import RunSpec

sys.path.insert(0, str(Path(__file__).parent.parent))
from report.conftest import StudyBuilder, spec  # noqa: E402

SETTINGS = SourceSettings(epochs=1, size=0.3, input_size=32, trained_input_size=16, seed=0)


@pytest.fixture(scope="module")
def digits_advice(digits):
    return advise(
        digits,
        candidates=["efficientnet_lite0.in1k", "cifar_cnn@source", "cifar_cnn@random"],
        target="0,1,2,3,4",
        per_class=20,
        settings=SETTINGS,
    )


def test_advise_ranks_scores_places_and_recommends(digits_advice):
    advice = digits_advice
    assert [c.name for c in advice.candidates] == sorted(
        ["efficientnet_lite0.in1k", "cifar_cnn@source", "cifar_cnn@random"],
        key=lambda n: -next(c.scores["logme"] for c in advice.candidates if c.name == n),
    )
    assert advice.task["n_train"] == 100 and advice.task["per_class"] == 20
    by_name = {c.name: c for c in advice.candidates}
    for c in advice.candidates:
        assert set(c.scores) == {"logme", "leep", "nce", "h_score", "knn"} and all(
            v is not None for v in c.scores.values()
        )
        assert -2.0 < c.scores["leep"] <= 0 and 0 <= c.scores["knn"] <= 1
        assert c.placement.small  # 20 per class < 1000
    # Images from another source exist for lite0 (photo stand-in) and @source (digits 5-9), not for random init.
    assert (
        by_name["cifar_cnn@random"].similarity is None
        and by_name["cifar_cnn@random"].placement.similar is None
    )
    lite = by_name["efficientnet_lite0.in1k"]
    assert 0.5 <= lite.similarity["domain_accuracy"] <= 1.0 and lite.similarity["frechet"] > 0
    assert "scikit-image" in lite.reference and "5, 6, 7, 8, 9" in by_name["cifar_cnn@source"].reference
    assert by_name["cifar_cnn@source"].source_record["n_train"] > 0
    rec = advice.recommendation
    assert rec["candidate"] == advice.candidates[0].name
    assert rec["run"]["target"] == "0,1,2,3,4"
    RunSpec(dataset="digits", **rec["run"]).resolved()
    json.dumps(advice.to_dict())  # the --json output is plain JSON


def test_candidate_grammar_errors(digits):
    assert parse_candidate("cifar_cnn@mnist") == ("cifar_cnn", "dataset", "mnist")
    with pytest.raises(TransferlabError, match="cifar_cnn has no pretrained weights; name how to get them"):
        parse_candidate("cifar_cnn")
    with pytest.raises(TransferlabError, match="unknown backbone 'resnet9000'"):
        parse_candidate("resnet9000@random")
    with pytest.raises(TransferlabError, match="give --target"):
        advise(digits, candidates=["cifar_cnn@source"], per_class=5, settings=SETTINGS)
    with pytest.raises(TransferlabError, match="after '@': random, source or a dataset"):
        advise(digits, candidates=["cifar_cnn@nosuchdata"], per_class=5, settings=SETTINGS)


def test_validate_against_a_study_and_the_report_shows_it(tmp_path, digits, capsys):
    from transferlab.cli import main
    from transferlab.report import write_report

    builder = StudyBuilder(tmp_path / "study")
    common = {"dataset": "digits", "per_class": 10, "size": None, "input_size": 32}
    accuracies = {"efficientnet_lite0.in1k": 0.8, "efficientnet_lite1.in1k": 0.5}
    for seed in (0, 1):
        for name, accuracy in accuracies.items():
            builder.add(
                spec(strategy="extract", backbone=name, head="logreg", seed=seed, **common),
                accuracy + 0.01 * seed,
                accuracy,
                100,
                10,
            )
        # Not a transfer candidate (its accuracy is what training from scratch learns): left out.
        builder.add(spec(strategy="scratch", backbone="cifar_cnn", seed=seed, **common), 0.9, 0.9, 100, 10)
    builder.close()
    result = validate(tmp_path / "study")
    (task,) = result["tasks"]
    rows = {r["candidate"]: r for r in task["rows"]}
    assert set(rows) == set(accuracies) and task["size"] == "10/class"
    assert (
        rows["efficientnet_lite0.in1k"]["accuracy_mean"] == pytest.approx(0.805)
        and rows["efficientnet_lite1.in1k"]["n"] == 2
    )
    names = list(rows)
    expected = kendalltau(
        [rows[n]["logme"] for n in names], [rows[n]["accuracy_mean"] for n in names]
    ).statistic
    assert task["kendall_tau"]["logme"] == pytest.approx(expected) and abs(expected) == 1.0
    assert json.loads((tmp_path / "study" / "advise_validation.json").read_text()) == result
    capsys.readouterr()
    assert (
        main(["advise", "--validate", str(tmp_path / "study")]) == 0
    )  # the CLI's table, from cached features
    out = capsys.readouterr().out
    assert (
        "Kendall tau with the mean test accuracy (2 candidates): logme" in out
        and "0.805 ± 0.007 (n=2)" in out
    )
    assert main(["advise"]) == 2 and "advise needs --dataset D" in capsys.readouterr().err
    write_report(tmp_path / "study")
    page = (tmp_path / "study" / "report" / "report.html").read_text()
    assert "advise_validation" in page and "efficientnet_lite0.in1k" in page
    assert (tmp_path / "study" / "report" / "advise_validation.csv").is_file()


def test_validate_needs_finished_runs(tmp_path):
    builder = StudyBuilder(tmp_path / "study")
    builder.fail(spec(strategy="scratch", dataset="digits", per_class=10, size=None), "boom")
    builder.close()
    with pytest.raises(TransferlabError, match="has no finished runs with a test accuracy"):
        validate(tmp_path / "study")
    with pytest.raises(TransferlabError, match="does not exist"):
        validate(tmp_path / "nothing")
    only_scratch = StudyBuilder(tmp_path / "scratch")
    only_scratch.add(spec(strategy="scratch", dataset="digits", per_class=10, size=None), 0.9, 0.9, 100, 10)
    only_scratch.close()
    with pytest.raises(TransferlabError, match="no transfer candidate to validate"):
        validate(tmp_path / "scratch")
