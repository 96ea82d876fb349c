"""The training loop: determinism, early stopping that restores the best epoch, frozen parameters,
parameter groups, divergence reported as TrainingFailed, bad settings as TransferlabError."""

from __future__ import annotations

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn

from transferlab.errors import TransferlabError
from transferlab.train import TrainConfig, TrainingFailed, evaluate, recalibrate_batchnorm, seeded, train


@pytest.fixture(scope="module")
def digits_xy():
    """sklearn digits as float features (1797, 64) in [0, 1] and int64 labels."""
    x, y = load_digits(return_X_y=True)
    return torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def mlp(seed: int = 0) -> nn.Module:
    with seeded(seed):
        return nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 10))


def test_same_seed_gives_identical_history_and_weights(digits_xy):
    x, y = digits_xy
    config = TrainConfig(epochs=3, batch_size=32, seed=5)
    runs = []
    for _ in range(2):
        model = mlp()
        outcome = train(model, x[:300], y[:300], config, val_inputs=x[300:400], val_labels=y[300:400])
        runs.append((outcome, model.state_dict()))
    (first, w1), (second, w2) = runs
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in first.history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in second.history]
    assert all(torch.equal(w1[k], w2[k]) for k in w1)
    other = mlp()
    train(other, x[:300], y[:300], TrainConfig(epochs=3, batch_size=32, seed=6))
    assert not torch.equal(other.state_dict()["0.weight"], w1["0.weight"])


def test_training_learns_and_history_is_complete(digits_xy):
    x, y = digits_xy
    model = mlp()
    outcome = train(
        model,
        x[:500],
        y[:500],
        TrainConfig(epochs=5, lr=1e-2, seed=0),
        val_inputs=x[500:700],
        val_labels=y[500:700],
    )
    assert [r["epoch"] for r in outcome.history] == [1, 2, 3, 4, 5]
    assert outcome.history[-1]["train_loss"] < outcome.history[0]["train_loss"]
    assert outcome.history[-1]["val_accuracy"] > 0.8 and outcome.best_epoch == 5 and not model.training
    assert set(outcome.history[0]) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "seconds",
    }


def test_sgd_with_momentum_learns(digits_xy):
    x, y = digits_xy
    model = mlp()
    outcome = train(model, x[:500], y[:500], TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, epochs=5))
    assert evaluate(model, x[500:], y[500:])[1] > 0.8 and outcome.history[-1]["val_loss"] is None


def test_early_stopping_restores_the_best_epoch(digits_xy):
    x, y = digits_xy
    # Validation labels shifted by one class: the better the model fits, the worse validation gets, so
    # the best validation loss comes early and training must stop and roll back to it.
    val_x, val_y = x[500:700], (y[500:700] + 1) % 10
    model = mlp()
    outcome = train(
        model,
        x[:500],
        y[:500],
        TrainConfig(epochs=30, lr=1e-2, patience=2, seed=0),
        val_inputs=val_x,
        val_labels=val_y,
    )
    losses = [r["val_loss"] for r in outcome.history]
    assert outcome.stopped_early and len(losses) == outcome.best_epoch + 2
    assert outcome.best_epoch == 1 + losses.index(min(losses))
    restored_loss, _ = evaluate(model, val_x, val_y)
    assert restored_loss == pytest.approx(losses[outcome.best_epoch - 1], rel=1e-6)
    assert restored_loss < losses[-1]


def test_frozen_parameters_do_not_change_and_groups_use_their_lr(digits_xy):
    x, y = digits_xy
    model = mlp()
    model[0].requires_grad_(False)
    frozen_before = model[0].weight.clone()
    head_before = model[3].weight.clone()
    train(model, x[:200], y[:200], TrainConfig(epochs=2, weight_decay=1e-3))
    assert torch.equal(model[0].weight, frozen_before)
    assert not torch.equal(model[3].weight, head_before)

    model = mlp()
    slow, fast = model[0].weight.clone(), model[3].weight.clone()
    groups = [{"params": list(model[0].parameters()), "lr": 1e-9}, {"params": list(model[3].parameters())}]
    train(model, x[:200], y[:200], TrainConfig(epochs=2, lr=1e-2), param_groups=groups)
    assert (model[0].weight - slow).abs().max() < 1e-6 < (model[3].weight - fast).abs().max()


def test_diverging_loss_raises_training_failed_with_reason(digits_xy):
    x, y = digits_xy
    model = mlp()
    with pytest.raises(TrainingFailed, match="diverged: try a smaller learning rate") as info:
        train(model, x[:200] * 1e20, y[:200], TrainConfig(optimizer="sgd", lr=1e6, epochs=5))
    assert "nan" in info.value.reason or "inf" in info.value.reason


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"lr": 0}, "lr=0 is invalid"),
        ({"lr": -1e-3}, "lr=-0.001 is invalid"),
        ({"epochs": 0}, "epochs=0 is invalid"),
        ({"batch_size": 0}, "batch_size=0 is invalid"),
        ({"optimizer": "adamw"}, "optimizer 'adamw' is unknown.*valid: adam, sgd"),
        ({"patience": 0}, "patience=0 is invalid"),
    ],
)
def test_bad_settings_raise(settings, message):
    with pytest.raises(TransferlabError, match=message):
        TrainConfig(**settings)


def test_patience_without_validation_and_nothing_to_train_raise(digits_xy):
    x, y = digits_xy
    with pytest.raises(TransferlabError, match="needs validation data"):
        train(mlp(), x[:50], y[:50], TrainConfig(patience=2))
    model = mlp().requires_grad_(False)
    with pytest.raises(TransferlabError, match="every parameter is frozen"):
        train(model, x[:50], y[:50], TrainConfig())


def test_seeded_restores_the_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        torch.rand(100)
    assert torch.equal(torch.rand(3), expected)


def test_batchnorm_recalibration_sets_exact_statistics_and_spares_frozen_layers(digits_xy):
    x, _ = digits_xy
    with seeded(0):
        model = nn.Sequential(nn.Linear(64, 8), nn.BatchNorm1d(8), nn.Linear(8, 8), nn.BatchNorm1d(8))
    model.train()
    model[3].eval()  # as Backbone.freeze keeps a frozen unit's BatchNorm
    frozen_mean = model[3].running_mean.clone()
    expected = model[0](x[:300]).detach()
    recalibrate_batchnorm(model, x[:300], batch_size=100)  # three equal batches: the mean is exact
    torch.testing.assert_close(model[1].running_mean, expected.mean(0))
    recalibrate_batchnorm(model, x[:300], batch_size=300)  # one batch: the variance is exact too
    torch.testing.assert_close(model[1].running_var, expected.var(0), rtol=1e-4, atol=1e-5)
    assert torch.equal(model[3].running_mean, frozen_mean) and model[1].momentum == 0.1
    assert model.training and model[1].training and not model[3].training


def test_recalibration_rescues_the_eval_mode_of_a_briefly_trained_batchnorm_net(digits_xy):
    x, y = digits_xy
    accuracies = {}
    for mode in ("momentum", "recalibrate"):
        with seeded(0):
            model = nn.Sequential(
                nn.Linear(64, 64),
                nn.BatchNorm1d(64),
                nn.ReLU(),
                nn.Linear(64, 64),
                nn.BatchNorm1d(64),
                nn.ReLU(),
                nn.Linear(64, 10),
            )
        train(model, x[:40], y[:40], TrainConfig(epochs=4, batch_size=40, lr=1e-2, bn_stats=mode))
        accuracies[mode] = evaluate(model, x[1000:], y[1000:])[1]
    assert accuracies["recalibrate"] > accuracies["momentum"] + 0.1
