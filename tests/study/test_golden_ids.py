"""Run ids and resolved specs stay what they were before the strategy records took over validation
(issue 18): a stored study resumes only if every run id of its grid is unchanged, and reads back only if
the resolved spec it saved is still a valid spec. Values computed with the code before that change."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from transferlab.runs import RunSpec
from transferlab.study.spec import load_study, run_id

ROOT = Path(__file__).resolve().parents[2]

# study file -> (runs, grid hash prefix, sha256 prefix of the resolved spec dicts in grid order)
STUDIES = {
    "benchmarks/studies/before.toml": (42, "4b7bc2754289774e", "1caebe157354f281"),
    "benchmarks/studies/fair-arms.toml": (162, "1ea55fe729a0d273", "633ceba06d7e352b"),
    "benchmarks/studies/fair-finetune.toml": (27, "478c682be52ea82d", "4c646f72a350a4e0"),
    "examples/quickstart.toml": (54, "7fa626885053b037", "37d520316d522c57"),
    "examples/seed-clothes.toml": (240, "f31217e423197eb0", "38ef93252f3db1c1"),
    "examples/seed-domains-cifar10.toml": (864, "dd04a0e29a2122df", "2225c7093cf7da16"),
    "examples/seed-domains.toml": (864, "005ddff82f561e8a", "2613308fdff2b519"),
    "examples/seed-siamese.toml": (36, "8e259d0ca04416c3", "801f533ff5aca54d"),
    "examples/seed-yosinski.toml": (720, "ec634b59b7da441d", "32bfe1b32292f268"),
}

# (run id, sha256 prefix of the resolved spec dict, the spec's fields): every strategy, head family and
# issue-15 recipe field.
SPECS = [
    (
        "e8c54a946d936ab2",
        "2671bfcdfbc65c37",
        {
            "strategy": "finetune",
            "dataset": "fashion-mnist",
            "per_class": 5,
            "head_init": "probe",
            "input_size": "auto",
            "l2_sp": 0.01,
            "layer_decay": 0.5,
        },
    ),
    (
        "a86ab4d826cceeab",
        "f0aa0f61ea723874",
        {
            "strategy": "finetune",
            "dataset": "fashion-mnist",
            "per_class": 50,
            "steps": 300,
            "frozen": 3,
            "backbone_lr": 0.0001,
        },
    ),
    (
        "050ea1282206781f",
        "387d31349929c2e7",
        {
            "strategy": "extract",
            "dataset": "fashion-mnist",
            "per_class": 20,
            "head": "logreg",
            "C": 0.1,
            "input_size": 224,
            "layer": "5",
        },
    ),
    (
        "41fe3fd347c3b766",
        "e87c9231de99b333",
        {
            "strategy": "extract",
            "dataset": "fashion-mnist",
            "per_class": 20,
            "head": "fc2",
            "activation": "sigmoid",
            "init": "default",
            "dropout": 0.2,
            "lr": 0.01,
        },
    ),
    (
        "31139171f2bc8427",
        "3f0b9da7281b11c0",
        {"strategy": "extract", "dataset": "digits", "size": 0.5, "head": "gap", "pool": "flatten"},
    ),
    (
        "69809121826b6843",
        "1f1017db507a5b88",
        {
            "strategy": "scratch",
            "dataset": "digits",
            "size": 0.5,
            "schedule": "cosine",
            "optimizer": "sgd",
            "momentum": 0.8,
            "weight_decay": 0.0001,
        },
    ),
    (
        "7f5c56b3874eda32",
        "fbc2fa8101536f74",
        {
            "strategy": "augment",
            "dataset": "digits",
            "per_class": 10,
            "augment": "mirror,crop",
            "bn_stats": "momentum",
        },
    ),
    (
        "d2b53423d35bff97",
        "74c5e385f9f78e5c",
        {
            "strategy": "snt",
            "dataset": "digits",
            "transfer": 3,
            "frozen": 1,
            "source_size": 0.5,
            "source_epochs": 4,
            "epochs": 2,
        },
    ),
    (
        "04653934c4319a19",
        "07ef5fb66c58e223",
        {
            "strategy": "siamese",
            "dataset": "digits",
            "source": "0,1,2,3",
            "target": "5,6,7",
            "n_way": 3,
            "tasks": 10,
            "pairs": 100,
            "hidden": 64,
            "frozen": 2,
            "epochs": 2,
        },
    ),
    (
        "fb709f99d7a33da3",
        "49539c34af01cf72",
        {"strategy": "siamese", "dataset": "digits", "head": "fc", "layer": "3", "pool": "flatten"},
    ),
    (
        "3f527dd2a059801d",
        "e929d58fd8f55c27",
        {
            "strategy": "scratch",
            "dataset": "digits",
            "source": "0,1,2",
            "target": "3,4,5",
            "side": "source",
            "swap": True,
            "val_size": 0,
            "test_per_class": 20,
            "device": "auto",
        },
    ),
]


# Optional settings added after the golden values were computed: unset (None), they are not part of what
# a stored spec was, exactly as run_id leaves out fields that resolve to None.
ADDED_SINCE = {"weights", "val_classes"}


def _stored(spec: RunSpec) -> dict:
    return {k: v for k, v in spec.to_dict().items() if not (k in ADDED_SINCE and v is None)}


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:16]


@pytest.mark.parametrize("path", sorted(STUDIES))
def test_study_grids_keep_their_run_ids_and_resolved_specs(path):
    study = load_study(ROOT / path)
    assert (len(study.runs), study.grid_hash[:16], _digest([_stored(s) for _, s in study.runs])) == STUDIES[
        path
    ]
    # A stored resolved spec reads back as the same run.
    rid, spec = study.runs[0]
    assert run_id(RunSpec.from_dict(spec.to_dict()).resolved()) == rid


@pytest.mark.parametrize(("golden", "digest", "fields"), SPECS)
def test_specs_keep_their_run_ids(golden, digest, fields):
    spec = RunSpec(**fields).resolved()
    assert (run_id(spec), _digest(_stored(spec))) == (golden, digest)
    assert RunSpec.from_dict(spec.to_dict()).resolved() == spec
