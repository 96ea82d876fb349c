"""The CLI of the foundation: datasets, data install, split-info; --json; exit codes and one-line errors."""

from __future__ import annotations

import json

import pytest


def test_help_reads_well(cli):
    code, out, _ = cli("--help")
    assert code == 0 and "split-info" in out and "datasets" in out
    code, out, _ = cli("split-info", "--help")
    assert code == 0 and "--per-class" in out and "--source" in out


def test_datasets_json(cli):
    code, out, _ = cli("datasets", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and set(rows) >= {"fashion-mnist", "mnist", "digits"}
    assert rows["digits"]["present"] is True and rows["fashion-mnist"]["images"] == 70_000


def test_datasets_absent_shows_install_command(cli, tmp_path):
    code, out, _ = cli("datasets", env={"TRANSFERLAB_DATA": str(tmp_path)})
    assert code == 0 and "transferlab data install mnist" in out


def test_split_info_json_source_target(cli, fashion):
    code, out, err = cli(
        "split-info",
        "fashion-mnist",
        "--size",
        "1%",
        "--source",
        "sandal,bag",
        "--target",
        "sneaker,ankle boot",
        "--json",
    )
    assert code == 0, err
    info = json.loads(out)
    target = info["sides"]["target"]
    assert target["class_names"] == ["Sneaker", "Ankle boot"]
    assert target["counts"] == {"train": [54, 54], "val": [600, 600], "test": [1000, 1000]}
    assert info["sides"]["source"]["classes"] == [5, 8]


def test_split_info_per_class_text(cli, digits):
    code, out, _ = cli("split-info", "digits", "--per-class", "10", "--seed", "3")
    assert code == 0 and "10/class" in out and "total" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["split-info", "nope"], "unknown dataset 'nope'"),
        (["split-info", "digits", "--size", "0.001"], "--per-class"),
        (["split-info", "digits", "--per-class", "500"], "per_class=500 is more than class"),
        (["split-info", "digits", "--source", "1,2", "--target", "2,3"], "overlap"),
        (["split-info", "digits", "--source", "one,two"], "class 'one' is unknown"),
        (["split-info", "digits", "--size", "abc"], "is not a fraction"),
        (["data", "install", "imagenet"], "unknown dataset 'imagenet'"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, args, needle):
    code, out, err = cli(*args)
    assert code == 2 and out == ""
    assert needle in err and err.count("\n") == 1 and "Traceback" not in err


def test_absent_dataset_exit_2_names_command(cli, tmp_path):
    code, _, err = cli("split-info", "mnist", env={"TRANSFERLAB_DATA": str(tmp_path)})
    assert code == 2 and "transferlab data install mnist" in err
