"""Classifiers on cached features, following the scikit-learn estimator contract.

``__init__`` only stores settings, ``fit(X, y)`` returns ``self``, learned state ends in ``_``, and
``sklearn.base.clone`` makes an untrained copy, so a sweep can clone one configured head per run.
X is float features: (N, D), or (N, C, H, W) spatial maps, which the FC, SVM and logistic heads flatten
(as the VGG16 study flattened its 2x2x512 conv output to 2,048 inputs) and the GAP head averages.

Heads (:func:`make_head` names):
- ``fc1``/``fc2``/``fc3``: 1-3 fully connected hidden layers of 100 / 100, 50 / 100, 50, 25 units (the
  VGG16 study; its parameter counts 205,607 / 210,307 / 211,407 for 2,048 inputs and 7 classes pin these
  down), activation sigmoid / ELU / ReLU, uniform U(-0.05, 0.05) or PyTorch default init, L2 weight
  decay, softmax + cross-entropy, Adam.
- ``gap``: global average pooling over the spatial dims of a conv map, optional dropout, one linear
  layer. Given already pooled (N, D) features there is nothing left to pool and it is exactly a linear
  (softmax regression) head trained by Adam, with dropout on its inputs.
- ``svm``: standardised features -> LinearSVC (dual coordinate descent), C chosen by stratified k-fold
  cross-validation on the training subset only, or given (then no CV: the study tunes C on validation).
- ``logreg``: standardised features -> multinomial logistic regression (L-BFGS), C = 1 unless given.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from torch import nn

from transferlab.catalog import Head, get_head, list_heads
from transferlab.errors import TransferlabError, TransferlabWarning
from transferlab.settings import ACTIVATION_NAMES, FC_HIDDEN, INITS, unknown
from transferlab.train import TrainConfig, predict_logits, seeded, train

ACTIVATIONS: dict[str, type[nn.Module]] = dict(
    zip(ACTIVATION_NAMES, (nn.Sigmoid, nn.ELU, nn.ReLU), strict=True)
)
HEADS = tuple(h.name for h in list_heads() if h.on_features)  # heads on cached features (extract's)
TORCH_HEADS = tuple(
    h for h in HEADS if get_head(h).trains
)  # trained by the training loop: lr, epochs, history
UNIFORM_LIMIT = 0.05  # Keras' classic 'uniform' initializer, U(-0.05, 0.05), as the VGG16 study used


def check_choice(what: str, value: str, options: Sequence[str]) -> str:
    if value not in options:
        raise unknown(what, value, options)
    return value


def fc_stack(
    in_features: int,
    num_classes: int,
    hidden: Sequence[int],
    activation: str = "relu",
    init: str = "uniform",
    dropout: float = 0.0,
) -> nn.Sequential:
    """Linear -> activation (-> dropout) per hidden width, then Linear to ``num_classes`` logits.
    Input (N, in_features) -> logits (N, num_classes). ``init="uniform"``: weights U(-0.05, 0.05), biases
    0; ``"default"``: PyTorch's own (Kaiming-uniform)."""
    check_choice("activation", activation, tuple(ACTIVATIONS))
    check_choice("init", init, INITS)
    layers: list[nn.Module] = []
    width = in_features
    for h in hidden:
        layers += [nn.Linear(width, h), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        width = h
    layers.append(nn.Linear(width, num_classes))
    stack = nn.Sequential(*layers)
    if init == "uniform":
        for layer in stack:
            if isinstance(layer, nn.Linear):
                nn.init.uniform_(layer.weight, -UNIFORM_LIMIT, UNIFORM_LIMIT)
                nn.init.zeros_(layer.bias)
    return stack


class GlobalAveragePool(nn.Module):
    """(N, C, H, W) -> (N, C) by averaging H and W; (N, D) passes through (already pooled)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3)) if x.ndim == 4 else x


def _as_float_array(X) -> np.ndarray:
    X = X.detach().cpu().numpy() if isinstance(X, torch.Tensor) else np.asarray(X)
    if X.ndim < 2 or len(X) == 0:
        raise TransferlabError(
            f"features must be a non-empty array (N, D) or (N, C, H, W), got shape {X.shape}"
        )
    return X.astype(np.float32, copy=False)


def _flat(X) -> np.ndarray:
    X = _as_float_array(X)
    return X.reshape(len(X), -1)


def _per_class(scores: np.ndarray) -> np.ndarray:
    """sklearn gives binary problems one score column (for the second class); make it (N, 2)."""
    return np.stack([-scores, scores], 1) if scores.ndim == 1 else scores


class _LabelledHead(ClassifierMixin, BaseEstimator):
    """Shared label handling: ``classes_`` holds the sorted labels seen in fit; ``loss`` is cross-entropy."""

    def _encode(self, y) -> np.ndarray:
        y = np.asarray(y)
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if not np.array_equal(self.classes_[index], y):
            unseen = sorted(set(y.tolist()) - set(self.classes_.tolist()))
            raise TransferlabError(
                f"labels {unseen} were not seen in fit (classes: {self.classes_.tolist()})"
            )
        return index.astype(np.int64)

    def _start_fit(self, y) -> np.ndarray:
        self.classes_ = np.unique(np.asarray(y))
        if len(self.classes_) < 2:
            raise TransferlabError(
                f"a head needs at least 2 classes in its training labels, got {self.classes_.tolist()}"
            )
        return self._encode(y)

    def predict(self, X) -> np.ndarray:
        return self.classes_[np.asarray(self.decision_function(X)).argmax(1)]

    def loss(self, X, y) -> float | None:
        """Mean cross-entropy (nats) of ``predict_proba`` on (X, y); None for heads without probabilities."""
        if not hasattr(self, "predict_proba"):
            return None
        return float(log_loss(y, self.predict_proba(X), labels=self.classes_))

    def score_and_loss(self, X, y) -> tuple[float, float | None]:
        """(``score``, ``loss``) on (X, y): the same two numbers, computed together."""
        return self.score(X, y), self.loss(X, y)


class _TorchHead(_LabelledHead):
    """A head trained by :func:`transferlab.train.train` on features (full batch in memory)."""

    def _module(self, X: np.ndarray, num_classes: int) -> nn.Module:
        raise NotImplementedError

    def _inputs(self, X) -> np.ndarray:
        return _as_float_array(X)

    def train_config(self) -> TrainConfig:
        """The head's training settings (budget: ``epochs``, else ``steps``, else the size rule)."""
        return TrainConfig(
            optimizer=self.optimizer,
            lr=self.lr,
            weight_decay=self.weight_decay,
            epochs=self.epochs,
            steps=self.steps,
            schedule=self.schedule,
            batch_size=self.batch_size,
            patience=self.patience,
            seed=self.seed,
            description=type(self).__name__,
        )

    def fit(self, X, y, eval_set: tuple | None = None):
        """Train on features X with labels y. eval_set=(X_val, y_val): validation for the history and,
        with ``patience``, early stopping that keeps the best check. Returns self (``budget_``: the
        resolved budget and what ran of it)."""
        X, y_index = self._inputs(X), self._start_fit(y)
        config = self.train_config()
        with seeded(self.seed):
            self.module_ = self._module(X, len(self.classes_))
        val = {}
        if eval_set is not None:
            val = {
                "val_inputs": torch.from_numpy(self._inputs(eval_set[0])),
                "val_labels": torch.from_numpy(self._encode(eval_set[1])),
            }
        outcome = train(self.module_, torch.from_numpy(X), torch.from_numpy(y_index), config, **val)
        self.history_, self.best_epoch_, self.budget_ = (
            outcome.history,
            outcome.best_epoch,
            outcome.budget_record(),
        )
        self.n_features_in_ = int(np.prod(X.shape[1:]))
        return self

    def decision_function(self, X) -> np.ndarray:
        """Logits (N, n_classes)."""
        return predict_logits(self.module_, torch.from_numpy(self._inputs(X))).numpy()

    def predict_proba(self, X) -> np.ndarray:
        return torch.softmax(torch.from_numpy(self.decision_function(X)), 1).numpy()

    def score_and_loss(self, X, y) -> tuple[float, float]:
        """(``score``, ``loss``) from one forward pass over X (the scoring cost of a run halves)."""
        logits = self.decision_function(X)
        accuracy = accuracy_score(y, self.classes_[logits.argmax(1)])
        probabilities = torch.softmax(torch.from_numpy(logits), 1).numpy()
        return float(accuracy), float(log_loss(y, probabilities, labels=self.classes_))


class FCHead(_TorchHead):
    """Fully connected head. hidden: widths of the hidden layers, e.g. (100, 50) (``fc2``);
    activation: sigmoid/elu/relu; init: uniform/default; dropout after each hidden layer (0 = none);
    lr (Adam step size), weight_decay (L2 coefficient), the budget: epochs (constant rate) or steps or,
    with neither, the size rule (see transferlab.train), schedule (constant/cosine, None: by budget),
    batch_size, patience (early stopping checks or None), optimizer adam/sgd, seed. Learned:
    ``module_``, ``classes_``, ``history_``, ``budget_``."""

    def __init__(
        self,
        hidden=(100,),
        activation="relu",
        init="uniform",
        dropout=0.0,
        lr=1e-3,
        weight_decay=0.0,
        epochs=20,
        batch_size=50,
        patience=None,
        optimizer="adam",
        seed=0,
        steps=None,
        schedule=None,
    ):
        self.hidden = hidden
        self.activation = activation
        self.init = init
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.optimizer = optimizer
        self.seed = seed
        self.steps = steps
        self.schedule = schedule

    def _inputs(self, X) -> np.ndarray:
        return _flat(X)

    def _module(self, X: np.ndarray, num_classes: int) -> nn.Module:
        return fc_stack(X.shape[1], num_classes, tuple(self.hidden), self.activation, self.init, self.dropout)


class GAPHead(_TorchHead):
    """Global average pooling (over H, W of (N, C, H, W) maps; nothing to pool for (N, D)) -> dropout
    -> linear. Settings as :class:`FCHead` minus the hidden layers."""

    def __init__(
        self,
        dropout=0.0,
        lr=1e-3,
        weight_decay=0.0,
        epochs=20,
        batch_size=50,
        patience=None,
        optimizer="adam",
        seed=0,
        steps=None,
        schedule=None,
    ):
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.optimizer = optimizer
        self.seed = seed
        self.steps = steps
        self.schedule = schedule

    def _module(self, X: np.ndarray, num_classes: int) -> nn.Module:
        if X.ndim not in (2, 4):
            raise TransferlabError(
                f"the gap head needs (N, C, H, W) maps or (N, D) features, got shape {X.shape}"
            )
        return nn.Sequential(
            GlobalAveragePool(), nn.Dropout(self.dropout), nn.Linear(X.shape[1], num_classes)
        )


class SVMHead(_LabelledHead):
    """Standardise -> LinearSVC, with C picked from ``Cs`` by stratified ``cv``-fold cross-validation
    (accuracy) on the training data. With fewer than ``cv`` images in some class the folds shrink to
    that count; with a single image per class no CV is possible and ``fallback_C`` is used (warned).
    A given ``C`` skips the CV (``cv_folds_`` = 0, ``cv_scores_`` empty), so a study can tune C on the
    validation set like every other arm's settings (VTAB's protocol) instead of inside the head.
    Learned: ``C_``, ``cv_folds_``, ``cv_scores_`` (mean CV accuracy per C), ``estimator_``.

    Always the dual solver: scikit-learn's ``dual="auto"`` takes the primal (trust-region Newton) whenever
    there are more images than features, and on standardised dense features that crawls at C >= 0.1 (lite0
    features at 10 % of Fashion-MNIST, 3,600 x 1,280 per fold: 239 s at C=0.1 and over 290 s at C=1, vs
    22.5 s and 32.5 s dual; 7.3 vs 2.8 s at C=1e-4), which made the CV grid take over 30 minutes. Both
    solve the same problem; their solutions differ within the solver tolerance."""

    def __init__(
        self, Cs=(1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0), cv=3, fallback_C=1.0, max_iter=5000, seed=0, C=None
    ):
        self.C = C
        self.Cs = Cs
        self.cv = cv
        self.fallback_C = fallback_C
        self.max_iter = max_iter
        self.seed = seed

    def fit(self, X, y, eval_set: tuple | None = None):
        """eval_set is accepted for a uniform head interface and not used (C is chosen by CV on X)."""
        X, y_index = _flat(X), self._start_fit(y)
        folds = int(min(self.cv, np.bincount(y_index).min()))
        self.cv_folds_ = folds if folds >= 2 else 0

        def pipeline(C: float):
            svc = LinearSVC(C=C, dual=True, max_iter=self.max_iter, random_state=self.seed)
            return make_pipeline(StandardScaler(), svc)

        if self.C is not None:
            self.C_, self.cv_folds_, self.cv_scores_ = float(self.C), 0, {}
            self.estimator_ = pipeline(self.C).fit(X, y_index)
        elif self.cv_folds_:
            search = GridSearchCV(
                pipeline(1.0),
                {"linearsvc__C": list(self.Cs)},
                scoring="accuracy",
                cv=StratifiedKFold(folds, shuffle=True, random_state=self.seed),
            )
            search.fit(X, y_index)
            self.C_ = float(search.best_params_["linearsvc__C"])
            self.cv_scores_ = {
                float(c): float(s)
                for c, s in zip(self.Cs, search.cv_results_["mean_test_score"], strict=True)
            }
            self.estimator_ = search.best_estimator_
        else:
            warnings.warn(
                f"svm head: one image per class leaves nothing to cross-validate C on; using "
                f"C={self.fallback_C:g}",
                TransferlabWarning,
                stacklevel=2,
            )
            self.C_, self.cv_scores_ = float(self.fallback_C), {}
            self.estimator_ = pipeline(self.fallback_C).fit(X, y_index)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Signed margins (N, n_classes)."""
        return _per_class(self.estimator_.decision_function(_flat(X)))


class LogRegHead(_LabelledHead):
    """Standardise -> multinomial logistic regression with inverse L2 strength ``C`` (L-BFGS up to
    ``max_iter`` iterations). Learned: ``estimator_``."""

    def __init__(self, C=1.0, max_iter=1000):
        self.C = C
        self.max_iter = max_iter

    def fit(self, X, y, eval_set: tuple | None = None):
        """eval_set is accepted for a uniform head interface and not used."""
        X, y_index = _flat(X), self._start_fit(y)
        self.estimator_ = make_pipeline(
            StandardScaler(), LogisticRegression(C=self.C, max_iter=self.max_iter)
        )
        self.estimator_.fit(X, y_index)
        self.n_features_in_ = X.shape[1]
        return self

    def decision_function(self, X) -> np.ndarray:
        """Log-odds scores (N, n_classes)."""
        return _per_class(self.estimator_.decision_function(_flat(X)))

    def predict_proba(self, X) -> np.ndarray:
        return self.estimator_.predict_proba(_flat(X))


def make_head(
    name: str,
    *,
    activation: str = "relu",
    init: str = "uniform",
    dropout: float = 0.0,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    epochs: int | None = 20,
    batch_size: int = 50,
    patience: int | None = None,
    optimizer: str = "adam",
    seed: int = 0,
    steps: int | None = None,
    schedule: str | None = None,
    C: float | None = None,
) -> _LabelledHead:
    """An unfitted head by name (see module docstring). Training settings apply to the torch heads
    (fc1-3, gap); ``C`` (inverse L2 strength) to svm and logreg only: None = svm's CV choice, logreg's 1."""
    check_choice("head", name, HEADS)
    if C is not None and "C" not in get_head(name).settings:  # the head registry says which heads take C
        raise TransferlabError(f"C applies to the svm and logreg heads only, not head {name!r}")
    training = dict(
        lr=lr,
        weight_decay=weight_decay,
        epochs=epochs,
        batch_size=batch_size,
        patience=patience,
        optimizer=optimizer,
        seed=seed,
        steps=steps,
        schedule=schedule,
    )
    return get_head(name).build(activation=activation, init=init, dropout=dropout, C=C, **training)


# The builders the head records name (catalog.register_head): record + settings -> an unfitted head.


def build_fc_head(head: Head, *, activation, init, dropout, C, **training) -> FCHead:
    return FCHead(hidden=FC_HIDDEN[head.name], activation=activation, init=init, dropout=dropout, **training)


def build_gap_head(head: Head, *, activation, init, dropout, C, **training) -> GAPHead:
    return GAPHead(dropout=dropout, **training)


def build_svm_head(head: Head, *, C, seed, **_) -> SVMHead:
    return SVMHead(seed=seed, C=C)


def build_logreg_head(head: Head, *, C, **_) -> LogRegHead:
    return LogRegHead(C=1.0 if C is None else C)
