"""The notebook API: transferlab.run / fit / study / load_study(dir).to_pandas(), on digits and tiny CNNs."""

from __future__ import annotations

import numpy as np
import pytest

import transferlab
from transferlab.errors import TransferlabError

TINY = {"backbone": "shallow_cnn", "input_size": 16, "epochs": 2, "batch_size": 32}

GRID = {
    "name": "api-tiny",
    "repeats": 2,
    "base": {"dataset": "digits", "per_class": [5, 20], "val_size": 0.2, **TINY},
    "runs": [{"strategy": "scratch", "lr": [1e-3, 3e-3]}],
}


def test_run_matches_the_cli_run(digits):
    result = transferlab.run("digits", "scratch", per_class=10, **TINY)
    assert result.ok and result.n_train == 100 and result.spec["strategy"] == "scratch"
    again = transferlab.run(digits, "scratch", per_class=10, **TINY)  # an ImageSet in memory: the same run
    assert again.test_accuracy == result.test_accuracy and again.indices_hash == result.indices_hash
    with pytest.raises(TransferlabError, match="unknown run setting 'per_clas'"):
        transferlab.run("digits", "scratch", per_clas=10)
    with pytest.raises(TransferlabError, match="unknown strategy 'scrach'"):
        transferlab.run("digits", "scrach")


def test_fit_returns_a_model_that_predicts_and_saves(digits, tmp_path):
    model = transferlab.fit("digits", "scratch", per_class=20, **TINY)
    predicted = model.predict(digits.images[:5])
    assert predicted.shape == (5,) and set(predicted) <= set(digits.class_names)
    loaded = transferlab.load_model(model.save(tmp_path / "m.pt"))
    assert (loaded.predict(digits.images[:5]) == predicted).all()
    assert 0 <= model.provenance["metrics"]["test_accuracy"] <= 1


def test_study_from_a_dict_and_load_study_to_pandas(tmp_path):
    import pandas as pd  # in the dev extra

    directory = tmp_path / "study"
    study = transferlab.study(GRID, directory, report=False)
    assert (directory / "spec.toml").read_text().startswith('name = "api-tiny"')
    table = transferlab.load_study(directory).to_pandas()
    assert isinstance(table, pd.DataFrame) and len(table) == 8  # 2 sizes x 2 lr x 2 seeds
    assert set(table["status"]) == {"done"} and table["test_accuracy"].between(0, 1).all()
    assert sorted(table["per_class"].unique()) == [5, 20] and study.counts()["done"] == 8
    # the same grid again resumes: nothing reruns; a TOML file path works the same
    rows = transferlab.study(str(directory / "spec.toml"), directory, report=False).rows()
    assert sorted(r["run_id"] for r in rows) == sorted(table["run_id"])
    assert np.allclose(sorted(r["test_accuracy"] for r in rows), sorted(table["test_accuracy"]))


def test_study_errors(tmp_path):
    with pytest.raises(TransferlabError, match="does not exist"):
        transferlab.load_study(tmp_path / "nowhere")
    with pytest.raises(TransferlabError, match=r"base.lr = \{"):
        transferlab.study({**GRID, "base": {"lr": {"a": 1}}}, tmp_path / "x")
    with pytest.raises(TransferlabError, match="unknown key 'epoch'"):
        transferlab.study({**GRID, "runs": [{"strategy": "scratch", "epoch": 3}]}, tmp_path / "y")


def test_study_is_the_package_and_the_function():
    import transferlab.study.runner  # noqa: F401  (importing a submodule rebinds transferlab.study)

    assert callable(transferlab.study) and transferlab.study.runner.run_study is not None
