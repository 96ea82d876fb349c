"""Synthetic study stores for the report tests: realistic resolved specs and results, written through the
store's own API (add_runs / claim / finish / fail), with accuracies from a known formula so that every
aggregate can be checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from transferlab.study.store import Store

# The fields of RunSpec.resolved().to_dict(), with their defaults (kept literal so these tests do not
# depend on the strategies' imports).
SPEC_DEFAULTS = {
    "strategy": "scratch",
    "dataset": "fashion-mnist",
    "backbone": "cifar_cnn",
    "input_size": None,
    "head": "linear",
    "activation": None,
    "init": None,
    "dropout": 0.0,
    "optimizer": "adam",
    "lr": 1e-3,
    "backbone_lr": None,
    "momentum": 0.9,
    "weight_decay": 0.0,
    "epochs": 10,
    "batch_size": 50,
    "patience": None,
    "size": 1.0,
    "per_class": None,
    "val_size": 0.1,
    "test_per_class": None,
    "source": None,
    "target": None,
    "side": "target",
    "swap": False,
    "frozen": None,
    "transfer": None,
    "source_size": 1.0,
    "source_epochs": None,
    "layer": None,
    "augment": "none",
    "seed": 0,
    "device": "cpu",
    "head_init": None,
    "l2_sp": None,
    "layer_decay": None,
}


def spec(**changes) -> dict:
    unknown = set(changes) - set(SPEC_DEFAULTS)
    assert not unknown, unknown
    return {**SPEC_DEFAULTS, **changes}


def result(spec_: dict, test: float, val: float, n_train: int, n_classes: int, **changes) -> dict:
    """A RunResult.to_dict() without history."""
    size_label = (
        f"{spec_['per_class']}/class" if spec_["per_class"] is not None else f"{100 * spec_['size']:g}%"
    )
    return {
        "spec": spec_,
        "status": "ok",
        "error": None,
        "test_accuracy": test,
        "test_loss": None if test is None else 1.0 - test,
        "val_accuracy": val,
        "val_loss": 1.0 - val,
        "train_accuracy": min(1.0, val + 0.1),
        "n_train": n_train,
        "n_val": 100 * n_classes,
        "n_test": 100 * n_classes,
        "n_classes": n_classes,
        "size_label": size_label,
        "indices_hash": "0" * 64,
        "epochs_run": spec_["epochs"],
        "best_epoch": spec_["epochs"],
        "hyperparameters": {"note": "synthetic"},
        "fit_seconds": 1.0,
        "features_seconds": 0.0,
        "source_seconds": 0.0,
        "eval_seconds": 0.1,
        "total_seconds": 1.1,
        "code_version": "0.1.0",
        **changes,
    }


def history(final_val: float, epochs: int) -> list[dict]:
    """Training error falls to ~0; validation error falls, then rises a little (over-fitting)."""
    out = []
    for e in range(1, epochs + 1):
        train = 1.0 - 0.9 * math.exp(-e / 3)
        val = final_val - 0.15 * math.exp(-e / 2) - 0.01 * max(0, e - epochs // 2) / epochs
        out.append(
            {"train_loss": 1 - train, "train_accuracy": train, "val_loss": 1 - val, "val_accuracy": val}
        )
    return out


class StudyBuilder:
    """Adds runs to a store: ``add(spec, test=..., val=...)`` finishes one; ``fail(spec, reason)`` fails one."""

    def __init__(self, directory) -> None:
        self.store = Store(directory)
        self.count = 0

    def _new(self, spec_: dict) -> str:
        run_id = f"run{self.count:04d}"
        self.count += 1
        self.store.add_runs([(run_id, spec_)])
        return run_id

    def add(
        self,
        spec_: dict,
        test: float,
        val: float,
        n_train: int,
        n_classes: int,
        epochs_history: int = 0,
        **result_changes,
    ) -> str:
        run_id = self._new(spec_)
        assert self.store.claim(run_id)
        hist = history(val, epochs_history) if epochs_history else []
        assert self.store.finish(
            run_id, result(spec_, test, val, n_train, n_classes, **result_changes), hist, version="0.1.0"
        )
        return run_id

    def fail(self, spec_: dict, reason: str) -> str:
        run_id = self._new(spec_)
        assert self.store.claim(run_id)
        assert self.store.fail(run_id, reason, version="0.1.0")
        return run_id

    def pending(self, spec_: dict) -> str:
        return self._new(spec_)

    def close(self) -> None:
        self.store.close()


FRACTIONS = (0.001, 0.01, 0.1, 1.0)
POOL = 54_000  # fashion-mnist training pool after the validation carve (10 classes)


def accuracy(n_train: int, ceiling: float, speed: float, chance: float = 0.1) -> float:
    """A saturating learning curve: chance at 0 images, ``ceiling`` at infinity."""
    return chance + (ceiling - chance) * (1 - math.exp(-((n_train / speed) ** 0.5)))


def build_full_study(directory, seeds=(0, 1, 2)) -> dict:
    """A realistic finished study: two tasks (fashion-mnist over fractions; digits halves for snt over
    per-class counts, both directions), every strategy, a failed and a pending run, histories.
    Returns the exact accuracies written, keyed by (strategy, size, config tag, seed)."""
    rng = np.random.default_rng(0)
    builder = StudyBuilder(directory)
    builder.store.set_meta("name", "synthetic-fashion")
    builder.store.set_meta("description", "Transfer vs scratch vs augmentation on a synthetic store.")
    builder.store.set_meta(
        "spec_toml", 'name = "synthetic-fashion"\nrepeats = 3\n[base]\ndataset = "fashion-mnist"\n'
    )
    written = {}
    configs = [
        ("scratch", {"strategy": "scratch"}, 0.88, 2000),
        ("augment", {"strategy": "augment", "augment": "mirror,noise"}, 0.90, 900),
        (
            "extract-fc1-1e-2",
            {
                "strategy": "extract",
                "backbone": "efficientnet_lite0.in1k",
                "head": "fc1",
                "activation": "sigmoid",
                "init": "uniform",
                "lr": 1e-2,
            },
            0.89,
            150,
        ),
        (
            "extract-fc2-1e-3",
            {
                "strategy": "extract",
                "backbone": "efficientnet_lite0.in1k",
                "head": "fc2",
                "activation": "sigmoid",
                "init": "uniform",
                "lr": 1e-3,
            },
            0.91,
            100,
        ),
    ] + [
        (
            f"finetune-{k}",
            {
                "strategy": "finetune",
                "backbone": "efficientnet_lite0.in1k",
                "head": "linear",
                "frozen": k,
                "backbone_lr": 1e-4,
            },
            0.92 - 0.01 * k,
            200 - 40 * k,
        )
        for k in range(4)
    ]
    for tag, changes, ceiling, speed in configs:
        for fraction in FRACTIONS:
            n_train = round(POOL * fraction)
            for seed in seeds:
                mean = accuracy(n_train, ceiling, speed)
                test = float(np.clip(mean + rng.normal(0, 0.01), 0, 1))
                val = float(np.clip(mean + rng.normal(0, 0.01), 0, 1))
                s = spec(size=fraction, seed=seed, epochs=12, **changes)
                builder.add(
                    s, test, val, n_train, 10, epochs_history=12 if changes["strategy"] != "extract" else 0
                )
                written[(tag, fraction, seed)] = (test, val)
    # snt on digits: random halves (5 classes each side), per_class sizes, A->B and B->A.
    for per_class in (10, 30, 90):
        n_train = 5 * per_class
        for transfer in range(4):
            for frozen in {0, transfer} if transfer else {0}:
                for swap in (False, True):
                    for seed in seeds:
                        boost = (
                            0.08
                            * transfer
                            * (1 - transfer / 6)
                            * (1.5 if frozen else 1.0)
                            * (30 / per_class) ** 0.3
                        )
                        mean = accuracy(n_train, 0.9, 120, chance=0.2) + boost * 0.5
                        test = float(np.clip(mean + rng.normal(0, 0.015), 0, 1))
                        val = float(np.clip(mean + rng.normal(0, 0.015), 0, 1))
                        s = spec(
                            strategy="snt",
                            dataset="digits",
                            backbone="cifar_cnn",
                            per_class=per_class,
                            size=None,
                            transfer=transfer,
                            frozen=frozen,
                            backbone_lr=1e-3,
                            source_epochs=10,
                            swap=swap,
                            seed=seed,
                        )
                        builder.add(s, test, val, n_train, 5, epochs_history=10)
                        written[("snt", per_class, transfer, frozen, swap, seed)] = (test, val)
    builder.fail(
        spec(strategy="extract", backbone="efficientnet_lite0.in1k", head="svm", size=0.001, seed=9),
        "TrainingFailed: loss is NaN at epoch 3 (lr 0.01 too high?)",
    )
    builder.pending(spec(strategy="scratch", size=0.001, seed=7))
    builder.close()
    return written


@pytest.fixture
def builder(tmp_path):
    b = StudyBuilder(tmp_path / "study")
    yield b
    b.close()


@pytest.fixture(scope="session")
def full_study(tmp_path_factory):
    """(study directory, accuracies written) of build_full_study, with its report written once."""
    from transferlab.report import write_report

    directory = tmp_path_factory.mktemp("full") / "study"
    written = build_full_study(directory)
    write_report(directory)
    return directory, written
