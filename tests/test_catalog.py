"""The strategy and head records (transferlab.catalog) and the settings they own (transferlab.settings)."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import pytest

from transferlab.catalog import (
    Head,
    Strategy,
    get_head,
    get_strategy,
    list_heads,
    list_strategies,
    register_head,
)
from transferlab.errors import TransferlabError
from transferlab.runs import COMMON, SETTINGS, RunSpec


def test_runspec_fields_are_the_common_head_and_strategy_settings():
    names = [f.name for f in dataclasses.fields(RunSpec)]
    assert names == list(SETTINGS)
    declared = {s.name for s in COMMON} | {s.name for st in list_strategies() for s in st.settings}
    assert {"frozen", "transfer", "head_init", "l2_sp", "layer_decay", "n_way"} <= declared
    assert set(names) == declared | {"activation", "init", "dropout", "C"}
    # A setting several strategies share has one field, whose help names each strategy's meaning.
    assert "finetune" in RunSpec.describe()["frozen"] and "snt" in RunSpec.describe()["frozen"]


def test_specs_pickle_into_worker_processes():
    spec = RunSpec(strategy="finetune", dataset="digits", frozen=2, l2_sp=0.01)
    assert pickle.loads(pickle.dumps(spec)) == spec
    assert type(pickle.loads(pickle.dumps(spec))) is RunSpec


def test_validating_specs_and_building_the_cli_import_no_torch():
    code = (
        "import sys; from transferlab.runs import RunSpec; from transferlab.cli import build_parser; "
        "RunSpec(strategy='snt', dataset='digits', transfer=2); build_parser(['run']); "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_records_answer_what_other_layers_used_to_check_by_name():
    assert [s.name for s in list_strategies() if s.needs_pretrained] == ["extract", "finetune"]
    snt = get_strategy("snt")
    assert snt.transfers({"transfer": 2}) and not snt.transfers({"transfer": 0})
    assert not get_strategy("scratch").transfers({}) and get_strategy("siamese").transfers({})
    assert [s.name for s in list_strategies() if s.exports is None] == ["siamese"]
    assert not get_strategy("extract").takes("bn_stats") and get_strategy("extract").takes("layer")
    assert not get_strategy("scratch").takes("layer") and get_strategy("scratch").takes("lr")
    assert [h.name for h in list_heads() if not h.trains] == ["logreg", "svm"]


def test_registering_a_name_twice_raises():
    with pytest.raises(TransferlabError, match="head 'fc1' is already registered"):
        register_head(Head("fc1", "again"))
    from transferlab.catalog import register_strategy

    with pytest.raises(TransferlabError, match="strategy 'scratch' is already registered"):
        register_strategy(
            Strategy("scratch", "again", "transferlab.strategies.scratch", ("linear",), "cifar_cnn")
        )


@pytest.mark.parametrize(
    ("lookup", "message"),
    [
        (lambda: get_strategy("finetun"), "unknown strategy 'finetun'.*did you mean: finetune"),
        (lambda: get_head("fc4"), "unknown head 'fc4'"),
    ],
)
def test_unknown_names_list_the_options(lookup, message):
    with pytest.raises(TransferlabError, match=message):
        lookup()


def test_one_template_for_a_setting_a_strategy_does_not_take():
    with pytest.raises(
        TransferlabError,
        match=r"^transfer is not a setting of strategy 'finetune'; strategies that "
        r"take it: snt$",
    ):
        RunSpec(strategy="finetune", dataset="digits", transfer=1)
    with pytest.raises(
        TransferlabError,
        match=r"^bn_stats is not a setting of strategy 'extract' \(its heads have no "
        r"BatchNorm\); strategies that take it: scratch, augment, finetune",
    ):
        RunSpec(strategy="extract", dataset="digits", bn_stats="momentum")


def test_heads_on_features_are_built_by_their_records():
    from transferlab.models import heads as head_module

    on_features = [h.name for h in list_heads() if h.on_features]
    assert sorted(on_features) == sorted(head_module.HEADS) == ["fc1", "fc2", "fc3", "gap", "logreg", "svm"]
    built = {name: head_module.make_head(name) for name in on_features}
    assert isinstance(built["fc2"], head_module.FCHead) and built["fc2"].hidden == (100, 50)
    assert isinstance(built["gap"], head_module.GAPHead)
    assert isinstance(built["logreg"], head_module.LogRegHead) and built["logreg"].C == 1.0
    assert isinstance(built["svm"], head_module.SVMHead)
    with pytest.raises(TransferlabError, match="built inside its strategy's network.*heads on features: fc1"):
        get_head("l1").build()
