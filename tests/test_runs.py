"""RunSpec validation (every bad value names itself and the options), resolved defaults, RunResult
serialisation, and the `transferlab run` command: JSON output, exit 2 on bad input, exit 1 on a failed run."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest

from transferlab.errors import TransferlabError
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies import list_strategies, run


def spec(**changes) -> RunSpec:
    return RunSpec(**{"strategy": "scratch", "dataset": "digits", **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        (
            {"strategy": "transfer"},
            "unknown strategy 'transfer'.*valid: augment, extract, finetune, scratch, siamese, snt",
        ),
        (
            {"strategy": "extract", "head": "fc4"},
            "head 'fc4' is not taken by strategy 'extract'.*valid: fc1, fc2",
        ),
        ({"head": "fc2"}, "head 'fc2' is not taken by strategy 'scratch'; valid: linear"),
        (
            {"strategy": "extract", "head": "fc1", "activation": "tanh"},
            "activation 'tanh' is unknown.*valid: elu, relu, sigmoid",
        ),
        (
            {"strategy": "extract", "head": "svm", "activation": "elu"},
            "activation is not a setting of head 'svm' \\(strategy 'extract'\\); heads that take it: fc1, fc2, fc3",
        ),
        ({"lr": 0}, "lr=0 is invalid; give a number > 0"),
        ({"lr": -1.0}, "lr=-1.0 is invalid"),
        ({"lr": float("nan")}, "lr=nan is invalid"),
        (
            {"epochs": 0},
            "epochs=0 is invalid; give a whole number >= 1 \\(a budget needs at least one optimizer step\\)",
        ),
        ({"epochs": 2.5}, "epochs=2.5 is invalid"),
        ({"batch_size": 0}, "batch_size=0 is invalid"),
        ({"optimizer": "rmsprop"}, "optimizer 'rmsprop' is unknown.*valid: adam, sgd"),
        ({"size": 0.5, "per_class": 3}, "either size .* or per_class"),
        ({"size": 1.5}, "size=1.5 is invalid"),
        ({"augment": "mirror,blur"}, "augmentation 'blur' is unknown.*valid: affine, crop, mirror, noise"),
        ({"strategy": "extract", "augment": "mirror"}, "extract trains on cached features"),
        ({"strategy": "augment", "augment": "none"}, "needs at least one augmentation"),
        ({"layer": "3"}, "layer is not a setting of strategy 'scratch'"),
        ({"frozen": 2}, "frozen is not a setting of strategy 'scratch'"),
        ({"strategy": "snt"}, "strategy snt needs transfer=n"),
        ({"strategy": "snt", "transfer": 2, "frozen": 3}, "frozen=3 exceeds transfer=2"),
        ({"strategy": "extract", "pool": "max"}, "pool 'max' is unknown.*valid: avg, flatten"),
        ({"side": "left"}, "side 'left' is unknown.*valid: source, target"),
        ({"device": "tpu"}, "device 'tpu' is unknown"),
        (
            {"dropout": 0.5},
            "dropout is not a setting of head 'linear' \\(strategy 'scratch'\\); heads that take it: extract's fc1, extract's fc2",
        ),
        ({"bn_stats": "ema"}, "bn_stats 'ema' is unknown.*valid: momentum, pretrained, recalibrate"),
        ({"strategy": "extract", "bn_stats": "momentum"}, "bn_stats is not a setting of strategy 'extract'"),
        ({"strategy": "extract", "C": 0}, "C=0 is invalid; give a number > 0"),
        ({"strategy": "extract", "C": -1.0}, "C=-1.0 is invalid"),
        ({"strategy": "extract", "C": float("inf")}, "C=inf is invalid"),
        ({"strategy": "extract", "C": float("nan")}, "C=nan is invalid"),
        ({"strategy": "extract", "C": "1"}, "C='1' is invalid"),
        (
            {"strategy": "extract", "head": "fc2", "C": 1.0},
            "C is not a setting of head 'fc2' \\(strategy 'extract'\\); heads that take it: logreg, svm",
        ),
        (
            {"C": 1.0},
            "C is not a setting of head 'linear' \\(strategy 'scratch'\\); heads that take it: extract's logreg, extract's svm",
        ),
    ],
)
def test_bad_spec_values_raise_with_the_options(changes, message):
    with pytest.raises(TransferlabError, match=message):
        spec(**changes)


def test_from_dict_rejects_unknown_keys_and_round_trips():
    with pytest.raises(TransferlabError, match="unknown run setting 'learning_rate'"):
        RunSpec.from_dict({"strategy": "scratch", "dataset": "digits", "learning_rate": 0.1})
    s = spec(per_class=5, seed=3)
    assert RunSpec.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    assert set(RunSpec.describe()) == {f.name for f in dataclasses.fields(RunSpec)}
    assert all(RunSpec.describe().values())


def test_resolved_fills_strategy_defaults():
    assert spec().resolved().backbone == "cifar_cnn" and spec().resolved().size == 1.0
    assert spec(strategy="augment").resolved().augment == "mirror,noise"
    assert spec(augment="noise,mirror").resolved().augment == "mirror,noise"
    ft = spec(strategy="finetune", lr=1e-3).resolved()
    assert (ft.backbone, ft.head, ft.frozen, ft.backbone_lr) == ("efficientnet_lite0.in1k", "linear", 0, 1e-4)
    ex = spec(strategy="extract", head="fc2").resolved()
    assert (ex.head, ex.activation, ex.init, ex.pool) == ("fc2", "relu", "uniform", "avg")
    assert spec(strategy="extract").resolved().head == "logreg"
    snt = spec(strategy="snt", transfer=3, epochs=4).resolved()
    assert (snt.frozen, snt.backbone_lr, snt.source_epochs) == (3, 1e-3, 4)
    assert spec(per_class=5).resolved().size is None


def test_every_strategy_is_registered_with_its_default_head():
    names = {s.name: s for s in list_strategies()}
    assert list(names) == ["scratch", "augment", "extract", "finetune", "snt", "siamese"]
    assert names["extract"].default_head == "logreg" and "svm" in names["extract"].heads
    assert names["siamese"].heads == ("l1", "fc")


def test_run_result_is_json_ready_and_round_trips():
    result = RunResult(spec=spec().to_dict(), test_accuracy=0.5, history=[{"epoch": 1, "val_loss": None}])
    data = json.loads(json.dumps(result.to_dict()))
    assert RunResult.from_dict(data) == result and data["test_accuracy"] == 0.5 and data["status"] == "ok"


def test_a_result_saves_its_indices_and_code_version(digits):
    from transferlab.data.splits import indices_from_record, make_task, record_indices_hash
    from transferlab.version import code_version

    small = spec(per_class=5, epochs=1, input_size=16, val_size=5, test_per_class=5, target="1,2,3")
    result = run(small, digits)
    assert result.ok and result.code_version == code_version()
    assert record_indices_hash(result.indices) == result.indices_hash
    saved = indices_from_record(json.loads(json.dumps(result.indices)))  # as stored: JSON
    task = make_task(digits, [1, 2, 3], per_class=5, val_size=5, test_per_class=5)
    for part in ("train", "val", "test"):
        np.testing.assert_array_equal(saved[part], getattr(task, part))
    assert len(saved["train"]) == result.n_train == 15 and result.indices["classes"] == [1, 2, 3]


def test_a_result_stored_before_indices_were_saved_still_loads():
    old = {
        "spec": spec().to_dict(),
        "status": "ok",
        "test_accuracy": 0.5,
        "indices_hash": "0" * 64,
        "code_version": "0.1.0",
    }
    result = RunResult.from_dict(old)
    assert result.indices == {} and result.test_accuracy == 0.5 and result.code_version == "0.1.0"


def test_a_side_with_one_class_is_bad_input(digits):
    with pytest.raises(TransferlabError, match="target side has 1 class"):
        run(spec(target="3", source="0,1"), digits)


def test_a_diverging_run_is_recorded_as_failed_not_raised(digits):
    result = run(
        spec(per_class=5, lr=1e6, optimizer="sgd", epochs=3, input_size=16, val_size=5, test_per_class=5),
        digits,
    )
    assert result.status == "failed" and not result.ok
    assert "diverged" in result.error and ("nan" in result.error or "inf" in result.error)
    assert result.test_accuracy is None and result.spec["lr"] == 1e6


COMMON = [
    "--dataset",
    "digits",
    "--per-class",
    "5",
    "--epochs",
    "2",
    "--input-size",
    "16",
    "--val-size",
    "5",
    "--test-per-class",
    "10",
]


def test_cli_run_prints_json_metrics(cli):
    code, out, err = cli("run", "--strategy", "scratch", *COMMON, "--json")
    assert code == 0, err
    result = json.loads(out)
    assert 0 <= result["test_accuracy"] <= 1 and result["n_train"] == 50 and result["n_test"] == 100
    assert result["spec"]["backbone"] == "cifar_cnn" and len(result["history"]) == 2


@pytest.mark.parametrize(
    "flags, code, message",
    [
        (["--strategy", "scratch", "--head", "svm"], 2, "head 'svm' is not taken by strategy 'scratch'"),
        (["--strategy", "scratch", "--lr", "0"], 2, "lr=0.0 is invalid"),
        (["--strategy", "finetun"], 2, "did you mean: finetune"),
        (["--strategy", "scratch", "--epochs", "0"], 2, "epochs=0 is invalid"),
        (["--strategy", "extract", "--C", "0"], 2, "C=0.0 is invalid; give a number > 0"),
        (["--strategy", "scratch", "--C", "1"], 2, "C is not a setting of head 'linear'"),
        (["--strategy", "scratch", "--lr", "1e6", "--optimizer", "sgd"], 1, "run failed: .*diverged"),
    ],
)
def test_cli_run_exit_codes(flags, code, message, capsys):
    from transferlab.cli import main

    assert main(["run", *COMMON, *flags, "--quiet"]) == code  # a flag given twice: argparse keeps the last
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(message, err)


def test_study_file_values_are_made_flat():
    s = RunSpec(strategy="extract", dataset="digits", layer=3, source=["sandal", 8], target=(0, 1))
    assert (s.layer, s.source, s.target) == ("3", "sandal,8", "0,1")
