"""Study specs: grid expansion (conditional axes, no duplicates), and every spec error names key and line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transferlab.errors import TransferlabError
from transferlab.study.spec import parse_study

SPEC = """
name = "t"
repeats = 2

[base]
dataset = "digits"
size = [0.2, 0.5]
epochs = 2

[[runs]]
strategy = "scratch"
backbone = "shallow_cnn"

[[runs]]
strategy = "extract"
backbone = "shallow_cnn"
head = ["logreg", "fc1"]
"""


def test_expansion_counts_and_conditional_axes():
    study = parse_study(SPEC)
    # scratch: 2 sizes x 2 seeds; extract: 2 heads x 2 sizes x 2 seeds — the head axis does not touch scratch
    assert study.count_by_strategy() == {"scratch": 4, "extract": 8}
    assert {spec.seed for _, spec in study.runs} == {0, 1}
    assert all(spec.epochs == 2 for _, spec in study.runs)
    assert len({rid for rid, _ in study.runs}) == len(study.runs)


def test_c_is_an_axis_of_the_logreg_and_svm_heads():
    study = parse_study(SPEC.replace('head = ["logreg", "fc1"]', 'head = ["logreg", "svm"]\nC = [0.01, 1]'))
    assert study.count_by_strategy() == {"scratch": 4, "extract": 16}  # 2 heads x 2 C x 2 sizes x 2 seeds
    assert {spec.C for _, spec in study.runs if spec.strategy == "extract"} == {0.01, 1}


def test_identical_runs_are_one_run_and_comments_do_not_change_the_grid():
    doubled = SPEC + '\n[[runs]]\nstrategy = "scratch"\nbackbone = "shallow_cnn"\n'
    assert len(parse_study(doubled).runs) == len(parse_study(SPEC).runs)
    assert parse_study("# a comment\n" + SPEC).grid_hash == parse_study(SPEC).grid_hash


@settings(max_examples=25, deadline=None)
@given(
    sizes=st.lists(st.sampled_from([0.1, 0.2, 0.5, 1.0]), min_size=1, max_size=4, unique=True),
    seeds=st.lists(st.integers(0, 50), min_size=1, max_size=3, unique=True),
    heads=st.lists(st.sampled_from(["logreg", "fc1", "fc2", "svm"]), min_size=1, max_size=4, unique=True),
    with_scratch=st.booleans(),
)
def test_grid_size_is_the_product_of_its_axes(sizes, seeds, heads, with_scratch):
    text = (
        f'name = "h"\n[base]\ndataset = "digits"\nsize = {sizes}\nseed = {seeds}\n'
        f'[[runs]]\nstrategy = "extract"\nbackbone = "shallow_cnn"\nhead = {heads!r}\n'.replace("'", '"')
    )
    if with_scratch:
        text += '[[runs]]\nstrategy = "scratch"\nbackbone = "shallow_cnn"\n'
    study = parse_study(text)
    expected = len(sizes) * len(seeds) * (len(heads) + (1 if with_scratch else 0))
    assert len(study.runs) == expected
    assert len({rid for rid, _ in study.runs}) == expected  # no duplicates
    assert {spec.head for _, spec in study.runs if spec.strategy == "extract"} == set(heads)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'name = "x"\nrepeat = 3\n',
            r"line 2 \(top level\): unknown key 'repeat' \(did you mean: repeats\?\)",
        ),
        (
            '[base]\ndataset = "digits"\nlearning_rate = 0.1\n',
            r"line 3 \(\[base\]\): unknown key 'learning_rate'",
        ),
        (
            '[base]\ndataset = "digits"\n[[runs]]\nstrategy = "scratch"\n[[runs]]\nstrategy = "extract"\nheads = ["fc1"]\n',
            r"line 7 \(\[\[runs\]\] #2\): unknown key 'heads' \(did you mean: head, head_init\?\)",
        ),
        (
            '[base]\ndataset = "digits"\nstrategy = "scratch"\nepochs = "ten"\n',
            r"line 4 \(\[base\]\): epochs = 'ten' has the wrong type str; expected int",
        ),
        (
            '[base]\ndataset = "digits"\nstrategy = "scratch"\nlr = [0.1, true]\n',
            r"lr = True has the wrong type bool",
        ),
        (
            '[base]\ndataset = "digits"\nstrategy = "scratch"\nlr = -1.0\n',
            r"lr=-1.0 is invalid; give a number > 0",
        ),
        ('[base]\ndataset = "digits"\nstrategy = "scratch"\nsize = []\n', r"size = \[\] is an empty axis"),
        (
            '[base]\ndataset = "digits"\nstrategy = "scratch"\nhead = "svm"\n',
            r"head 'svm' is not taken by strategy 'scratch'",
        ),
        ('[base]\ndataset = "digits"\nstrategy = "bogus"\n', r"unknown strategy 'bogus'"),
        ('[base]\ndataset = "digits"\nstrategy = "extract"\nC = [1, 0]\n', r"C=0 is invalid"),
        ("name = 'bad name!'\n", r"name 'bad name!' must be"),
        ("[base\n", r"is not valid TOML"),
        (
            'repeats = 2\n[base]\ndataset = "digits"\nstrategy = "scratch"\nseed = [1]\n',
            r"either repeats or a seed axis",
        ),
    ],
)
def test_spec_errors_name_key_and_line(text, message):
    with pytest.raises(TransferlabError, match=message):
        parse_study(text, "spec.toml")


GOLDEN_RUN_ID = "25b6d3cd1de14e98"


def test_run_ids_are_stable_across_releases(monkeypatch):
    """A run id is what lets a study resume: it must not move when a release adds an optional field. The
    golden value pins the id of one spec; changing it orphans every stored run of every user's study."""
    from transferlab.runs import RunSpec
    from transferlab.study.spec import run_id

    spec = RunSpec(strategy="extract", dataset="fashion-mnist", per_class=5, head="logreg", seed=1).resolved()
    assert run_id(spec) == GOLDEN_RUN_ID
    # A new optional field (default None) in a later release: same id.
    plain = spec.to_dict()
    monkeypatch.setattr(RunSpec, "to_dict", lambda self: {**plain, "a_future_option": None})
    assert run_id(spec) == GOLDEN_RUN_ID
    # A set value is part of the identity.
    monkeypatch.setattr(RunSpec, "to_dict", lambda self: {**plain, "a_future_option": 3})
    assert run_id(spec) != GOLDEN_RUN_ID


# Ids that release 0.1 gave these specs (computed with its code): studies it stored must resume unchanged.
RELEASE_0_1_IDS = [
    (
        "25b6d3cd1de14e98",
        {"strategy": "extract", "dataset": "fashion-mnist", "per_class": 5, "head": "logreg", "seed": 1},
    ),
    (
        "efd63e5974953803",
        {
            "strategy": "extract",
            "dataset": "fashion-mnist",
            "per_class": 5,
            "head": "svm",
            "seed": 1,
            "layer": 5,
        },
    ),
    (
        "7ec4fc240fa92dc6",
        {
            "strategy": "extract",
            "dataset": "fashion-mnist",
            "per_class": 5,
            "head": "fc2",
            "seed": 1,
            "epochs": 40,
        },
    ),
    (
        "7b8c552937203070",
        {
            "strategy": "scratch",
            "dataset": "fashion-mnist",
            "per_class": 5,
            "seed": 1,
            "epochs": 30,
            "patience": 5,
        },
    ),
    (
        "12dcaa7b495912bf",
        {
            "strategy": "finetune",
            "dataset": "fashion-mnist",
            "per_class": 5,
            "seed": 1,
            "epochs": 30,
            "frozen": 6,
        },
    ),
    (
        "ba717c79a43de442",
        {"strategy": "augment", "dataset": "fashion-mnist", "per_class": 5, "seed": 1, "epochs": 30},
    ),
    (
        "0744bda955786ba9",
        {
            "strategy": "snt",
            "dataset": "fashion-mnist",
            "source": "0,1",
            "target": "2,3",
            "seed": 1,
            "epochs": 30,
            "transfer": 2,
        },
    ),
    (
        "f0660069b0d15bb2",
        {
            "strategy": "siamese",
            "dataset": "fashion-mnist",
            "source": "0,1,2",
            "target": "3,4",
            "seed": 1,
            "epochs": 3,
        },
    ),
]


@pytest.mark.parametrize(("golden", "fields"), RELEASE_0_1_IDS)
def test_release_0_1_run_ids_still_match(golden, fields):
    """Explicit-epochs network runs and closed-form heads mean what they meant in 0.1, so keep its ids."""
    from transferlab.runs import RunSpec
    from transferlab.study.spec import run_id

    assert run_id(RunSpec(**fields).resolved()) == golden


def test_a_network_run_without_a_budget_is_a_new_run():
    """In 0.1 no epochs meant 20 epochs; now it means the size rule, a different recipe, so a different id."""
    from transferlab.runs import RunSpec
    from transferlab.study.spec import run_id

    old = RunSpec(strategy="scratch", dataset="fashion-mnist", per_class=5, seed=1, epochs=20).resolved()
    new = RunSpec(strategy="scratch", dataset="fashion-mnist", per_class=5, seed=1).resolved()
    assert run_id(old) != run_id(new)
