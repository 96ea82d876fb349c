"""``snt``: the source model is trained once and reused from the cache, transferred frozen units keep
the source's weights through target training (SnT) while SnT+ changes them, and both base and transfer
learn a target with 5 images per class."""

from __future__ import annotations

import json

import pytest
import torch

from transferlab.errors import TransferlabError
from transferlab.strategies import prefix, run, snt
from transferlab.strategies.base import fit_network, image_transform, load_task, train_config
from transferlab.strategies.snt import source_key, source_model, target_model
from transferlab.version import code_version

CONV_UNITS = 7  # cifar_cnn: input + six convolutions


@pytest.fixture(scope="module")
def snt_spec(small_spec):
    def make(**changes):
        return small_spec(
            "snt", **{"per_class": 5, "epochs": 4, "source_epochs": 4, "source": "0,1,2,3,4", **changes}
        ).resolved()

    return make


def test_source_model_is_cached_by_content(digits, snt_spec, private_cache):
    first = run(snt_spec(transfer=CONV_UNITS), digits)
    again = run(snt_spec(transfer=CONV_UNITS, frozen=0), digits)
    assert first.ok and again.ok
    assert first.hyperparameters["source_cached"] is False and again.hyperparameters["source_cached"] is True
    key = first.hyperparameters["source_model"]
    assert again.hyperparameters["source_model"] == key
    record = json.loads((private_cache / "source_models" / f"{key}.json").read_text())
    assert record["settings"]["source_classes"] == [0, 1, 2, 3, 4] and record["test_accuracy"] > 0.8
    assert record["code_version"] == code_version() and again.hyperparameters["source_cached"]
    assert first.hyperparameters["mode"] == "SnT" and again.hyperparameters["mode"] == "SnT+"
    # cifar_cnn's unit 3 has dropout, which training applies in frozen units too: no fixed prefix there.
    assert "conv1_2.4 (Dropout)" in first.hyperparameters["prefix_fallback"]
    assert again.hyperparameters["prefix_fallback"] == "no frozen units (frozen=0)"
    other_seed = run(snt_spec(transfer=CONV_UNITS, seed=1), digits)
    assert other_seed.hyperparameters["source_model"] != key


def test_source_key_has_the_model_format_not_the_code_version(digits, snt_spec, monkeypatch):
    spec = snt_spec(transfer=CONV_UNITS)
    key, settings = source_key(spec, digits, (0, 1, 2, 3, 4))
    assert settings["format"] == snt.SOURCE_MODEL_FORMAT and "code_version" not in settings
    monkeypatch.setattr("transferlab.__version__", "9.9.9")  # a release or source edit keeps the model
    monkeypatch.setattr("transferlab.version.code_version", lambda: "9.9.9+src.00000000")
    assert source_key(spec, digits, (0, 1, 2, 3, 4))[0] == key
    monkeypatch.setattr(snt, "SOURCE_MODEL_FORMAT", snt.SOURCE_MODEL_FORMAT + 1)  # a bumped format retrains
    assert source_key(spec, digits, (0, 1, 2, 3, 4))[0] != key


def test_source_key_has_the_step_budget_and_schedule_the_source_model_trains_with(digits, snt_spec):
    classes = (0, 1, 2, 3, 4)
    constant, cosine = (snt_spec(transfer=CONV_UNITS, schedule=name) for name in ("constant", "cosine"))
    assert source_key(constant, digits, classes)[0] != source_key(cosine, digits, classes)[0]
    steps = [snt_spec(transfer=CONV_UNITS, epochs=None, source_epochs=None, steps=n) for n in (50, 60)]
    assert source_key(steps[0], digits, classes)[0] != source_key(steps[1], digits, classes)[0]


def test_base_and_transfer_learn_a_tiny_target(digits, snt_spec):
    base = run(snt_spec(transfer=0), digits)
    transferred = run(snt_spec(transfer=CONV_UNITS), digits)
    assert base.hyperparameters["mode"] == "base" and base.hyperparameters["source_model"] is None
    assert transferred.hyperparameters["target_classes"] == [5, 6, 7, 8, 9] and transferred.n_train == 25
    # 5 target classes: chance is 0.2. (Which one wins is what the benchmarks measure; on digits with
    # BatchNorm recalibration both land near 0.8.)
    assert base.test_accuracy > 0.5 and transferred.test_accuracy > 0.5


@pytest.mark.parametrize("frozen, stays", [(CONV_UNITS, True), (0, False)])
def test_frozen_transferred_units_keep_the_source_weights(digits, snt_spec, frozen, stays):
    spec = snt_spec(transfer=CONV_UNITS, frozen=frozen)
    source, _ = source_model(spec, digits, (0, 1, 2, 3, 4), torch.device("cpu"), progress=False)
    task = load_task(spec, digits, (5, 6, 7, 8, 9))
    model, groups = target_model(spec, source, task.num_classes, torch.device("cpu"))
    source_units = dict(source.named_units())
    name = "conv2_1"
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            model.units[name].state_dict().values(), source_units[name].state_dict().values(), strict=True
        )
    )
    fit_network(
        model, task, train_config(spec, False), image_transform(model, spec, torch.device("cpu")), groups
    )
    after = model.units[name].state_dict()  # weights and BatchNorm running statistics
    same = all(torch.equal(after[k], v) for k, v in source_units[name].state_dict().items())
    assert same is stays


def test_frozen_units_without_dropout_run_once_per_image(digits, snt_spec, monkeypatch):
    """Units 1-2 (input, conv1_1) are a fixed function in SnT: trained on their maps, the run is the run
    on images within float rounding (tolerance as tests/strategies/test_prefix.py: 1e-3 relative)."""
    spec = snt_spec(transfer=2)
    once = run(spec, digits)
    monkeypatch.setattr(prefix, "PREFIX_BUDGET_BYTES", 0)
    full = run(spec, digits)
    assert once.hyperparameters["prefix_cached"] is True
    assert once.hyperparameters["prefix_shape"] == [32, 16, 16]
    assert full.hyperparameters["prefix_cached"] is False
    for ours, theirs in zip(once.history, full.history, strict=True):
        for key in ("train_loss", "val_loss"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3), (ours["epoch"], key)
    assert once.test_loss == pytest.approx(full.test_loss, rel=1e-3)
    assert abs(once.test_accuracy - full.test_accuracy) <= 1 / once.n_test + 1e-9


def test_transfer_beyond_the_units_is_bad_input(digits, snt_spec):
    with pytest.raises(TransferlabError, match="transfer=10 is out of range for cifar_cnn.*0..9"):
        run(snt_spec(transfer=10), digits)
