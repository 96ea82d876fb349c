"""Heads on features: the VGG16 study's FC sizes, the sklearn contract (clone, fit returns self),
accuracy above chance on real data, GAP's pooling, the SVM's C search, and bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits

from transferlab.errors import TransferlabError, TransferlabWarning
from transferlab.models.heads import FC_HIDDEN, HEADS, GAPHead, SVMHead, fc_stack, make_head


@pytest.fixture(scope="module")
def digits_split():
    """Real data: sklearn digits pixels (N, 64) in [0, 1]; 600 to train, 400 to test."""
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    return x[:600], y[:600], x[600:1000], y[600:1000]


@pytest.mark.parametrize("name, parameters", [("fc1", 205_607), ("fc2", 210_307), ("fc3", 211_407)])
def test_fc_heads_match_the_vgg16_study_parameter_counts(name, parameters):
    stack = fc_stack(2048, 7, FC_HIDDEN[name], "sigmoid", "uniform")
    assert sum(p.numel() for p in stack.parameters()) == parameters
    weights = [m.weight for m in stack if hasattr(m, "weight")]
    assert all(float(w.detach().abs().max()) <= 0.05 + 1e-6 for w in weights)  # float32 rounding of 0.05


@pytest.mark.parametrize("name", HEADS)
def test_every_head_clones_fits_and_beats_chance(name, digits_split):
    x, y, x_test, y_test = digits_split
    head = make_head(name, activation="elu", epochs=15, lr=1e-2)
    fresh = clone(head)
    assert fresh.get_params() == head.get_params()
    assert fresh.fit(x, y, eval_set=(x_test[:100], y_test[:100])) is fresh
    assert fresh.score(x_test, y_test) > 0.8  # chance is 0.1
    assert not any(k.endswith("_") and not k.startswith("_") for k in vars(clone(fresh)))
    assert list(fresh.classes_) == list(range(10))
    assert fresh.score_and_loss(x_test, y_test) == (fresh.score(x_test, y_test), fresh.loss(x_test, y_test))
    loss = fresh.loss(x_test, y_test)
    assert (loss is None) == (name == "svm") and (loss is None or 0 < loss < 1.0)


def test_torch_heads_are_deterministic_and_record_history(digits_split):
    x, y, x_test, _ = digits_split
    a = make_head("fc2", epochs=3, seed=1).fit(x, y, eval_set=(x_test, _))
    b = make_head("fc2", epochs=3, seed=1).fit(x, y, eval_set=(x_test, _))
    assert np.array_equal(a.predict_proba(x_test), b.predict_proba(x_test))
    assert len(a.history_) == 3 and a.history_[-1]["val_accuracy"] is not None


def test_gap_pools_spatial_maps_and_equals_a_linear_head_on_pooled_features(digits_split):
    x, y, x_test, _ = digits_split
    rng = np.random.default_rng(0)
    maps = x[:, :, None, None] + rng.normal(0, 0.1, (len(x), 64, 2, 2)).astype(np.float32)
    maps -= maps.mean(axis=(2, 3), keepdims=True) - x[:, :, None, None]  # spatial mean is exactly x
    on_maps = GAPHead(epochs=3).fit(maps, y)
    on_pooled = GAPHead(epochs=3).fit(x, y)
    np.testing.assert_allclose(
        on_maps.decision_function(x_test), on_pooled.decision_function(x_test), atol=1e-4
    )


def test_svm_picks_c_by_cross_validation_and_shrinks_folds(digits_split):
    x, y, _, _ = digits_split
    svm = SVMHead(Cs=(1e-3, 1.0), cv=5).fit(x[:30], y[:30])  # 1-6 images per class
    assert svm.C_ in (1e-3, 1.0) and svm.cv_folds_ == min(5, np.bincount(y[:30]).min())
    assert set(svm.cv_scores_) == {1e-3, 1.0}
    one_each = np.array([np.flatnonzero(y == c)[0] for c in range(10)])
    with pytest.warns(TransferlabWarning, match="one image per class"):
        lone = SVMHead().fit(x[one_each], y[one_each])
    assert lone.cv_folds_ == 0 and lone.C_ == 1.0


def test_a_given_c_is_used_by_logreg_and_skips_the_svms_cross_validation(digits_split):
    x, y, _, _ = digits_split
    # Inverse L2 strength: a tiny C shrinks the weights that C=1 (the former fixed value) leaves large.
    norms = {C: np.linalg.norm(make_head("logreg", C=C).fit(x, y).estimator_[-1].coef_) for C in (1e-4, 1.0)}
    assert norms[1e-4] < 0.1 * norms[1.0]
    assert make_head("logreg").C == 1.0
    one_each = np.array([np.flatnonzero(y == c)[0] for c in range(10)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # given C: nothing to cross-validate, so no one-image warning
        svm = make_head("svm", C=0.01).fit(x[one_each], y[one_each])
    assert (svm.C_, svm.cv_folds_, svm.cv_scores_) == (0.01, 0, {})
    assert svm.estimator_[-1].C == 0.01
    with pytest.raises(TransferlabError, match="C applies to the svm and logreg heads only, not head 'fc1'"):
        make_head("fc1", C=1.0)


def test_labels_need_not_be_0_to_k(digits_split):
    x, y, x_test, y_test = digits_split
    head = make_head("logreg").fit(x, y + 100)
    assert head.score(x_test, y_test + 100) > 0.8
    with pytest.raises(TransferlabError, match="labels \\[5\\] were not seen"):
        make_head("fc1", epochs=1).fit(x, y + 100, eval_set=(x_test[:5], np.full(5, 5)))


def test_bad_head_settings_raise(digits_split):
    x, y, _, _ = digits_split
    with pytest.raises(
        TransferlabError, match="head 'fc4' is unknown.*valid: fc1, fc2, fc3, gap, logreg, svm"
    ):
        make_head("fc4")
    with pytest.raises(TransferlabError, match="activation 'tanh' is unknown.*valid: elu, relu, sigmoid"):
        make_head("fc1", activation="tanh").fit(x, y)
    with pytest.raises(TransferlabError, match="at least 2 classes"):
        make_head("logreg").fit(x[:5], np.zeros(5))
    with pytest.raises(TransferlabError, match="lr=0 is invalid"):
        make_head("fc1", lr=0).fit(x, y)


def test_svm_dual_solver_matches_sklearns_primal_choice_when_images_outnumber_features(digits_split):
    """The head always solves the dual; with more images than features scikit-learn's ``dual="auto"``
    takes the primal. Same problem: the same C is chosen and the predictions agree."""
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    x, y, x_test, _ = digits_split  # 600 x 64: 400 per fold > 64 features, so "auto" is the primal
    Cs = (1e-3, 1e-2, 1e-1)
    head = SVMHead(Cs=Cs).fit(x, y)
    plain = GridSearchCV(
        make_pipeline(StandardScaler(), LinearSVC(random_state=0)),
        {"linearsvc__C": list(Cs)},
        cv=StratifiedKFold(3, shuffle=True, random_state=0),
    ).fit(x, y)
    assert head.estimator_[-1].dual is True
    assert head.C_ == plain.best_params_["linearsvc__C"]
    assert (head.predict(x_test) == plain.predict(x_test)).mean() >= 0.99
