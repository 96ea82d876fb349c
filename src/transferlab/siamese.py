"""Siamese one-shot learning (Koch, Zemel & Salakhutdinov 2015, as the VGG16 study extended it).

Pieces, each usable on its own:
- :func:`sample_pairs`: balanced same/different pairs (half each), seeded, from one pool of labelled images;
- :func:`sample_tasks`: N-way one-shot tasks (one query, N candidates from N distinct classes, exactly one
  of them of the query's class), seeded;
- :class:`SiameseNet`: the twin network. Both images go through one shared encoder (a backbone's units,
  frozen or partly trained, or nothing when the inputs are already its cached features), one fully
  connected layer with sigmoid (``hidden`` units, 4,096 in the study), the L1 distance |h(a) - h(b)|, and
  a final layer whose sigmoid is P(same): a weighted L1 distance with non-negative weights (``head="l1"``,
  the default) or Koch's unconstrained fully connected layer (``"fc"``). Symmetric by construction:
  |h(a) - h(b)| = |h(b) - h(a)| exactly in floats; ``centre_bias`` starts P(same) near 1/2;
- :func:`embeddings` / :func:`task_scores` / :func:`one_shot_correct`: each pool image embedded once, each
  task's query scored against its candidates, and whether the best candidate is the answer;
  :func:`nearest_neighbour_correct`: Koch's 1-nearest-neighbour comparison (Euclidean) on any vectors
  (raw pixels, pretrained features);
- :func:`wilson_interval` / :func:`accuracy_metrics`: the 95% confidence interval of an accuracy over
  independent tasks, and the metrics a run records.

Training reuses :func:`transferlab.train.train` (softmax cross-entropy): ``SiameseNet.forward`` returns the
two logits (0, z) per pair, and softmax((0, z))[1] = sigmoid(z), so its cross-entropy is exactly the
binary cross-entropy of P(same) = sigmoid(z), and its "accuracy" is the pair verification accuracy at 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats as scipy_stats
from torch import nn

from transferlab import fewshot
from transferlab.errors import TransferlabError
from transferlab.fewshot import FewShotTasks

CONFIDENCE = 0.95


# ------------------------------------------------------------------------------------- sampling


def _classes_with_images(
    labels: np.ndarray, class_names: Sequence[str] | None, minimum: int = 2
) -> dict[int, np.ndarray]:
    """{class: positions of its images}; every class present needs ``minimum`` images (a same-class pair
    and a one-shot task both need two distinct images of one class)."""
    labels = np.asarray(labels)
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    for c, positions in by_class.items():
        if len(positions) < minimum:
            name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
            raise TransferlabError(
                f"class {name!r} has {len(positions)} image(s); Siamese pairs and one-shot tasks need at least "
                f"{minimum} per class (two distinct images of one class)"
            )
    return by_class


def _check_count(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise TransferlabError(f"{name}={value!r} is invalid; give a whole number >= 1")


def sample_pairs(
    labels: np.ndarray, n_pairs: int, rng: np.random.Generator, class_names: Sequence[str] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Balanced pairs from a pool of images with int ``labels`` (P,).

    Returns (pairs int64 (n_pairs, 2): positions into ``labels``, same int64 (n_pairs,): 1 = same class).
    ceil(n/2) pairs are same-class and floor(n/2) different-class, in shuffled order. A same pair is a
    uniformly drawn class and two distinct images of it; a different pair is two distinct classes and one
    image of each. Needs >= 2 classes with >= 2 images each."""
    _check_count("pairs", n_pairs)
    by_class = _classes_with_images(labels, class_names)
    classes = np.array(sorted(by_class))
    if len(classes) < 2:
        raise TransferlabError(
            f"pairs need at least 2 classes to draw different-class pairs; got {len(classes)}"
        )
    n_same = (n_pairs + 1) // 2
    pairs = np.empty((n_pairs, 2), dtype=np.int64)
    same = np.zeros(n_pairs, dtype=np.int64)
    same[:n_same] = 1
    for i in range(n_pairs):
        if i < n_same:
            c = classes[rng.integers(len(classes))]
            pairs[i] = rng.choice(by_class[c], 2, replace=False)
        else:
            a, b = rng.choice(classes, 2, replace=False)
            pairs[i] = (rng.choice(by_class[a]), rng.choice(by_class[b]))
    order = rng.permutation(n_pairs)
    return pairs[order], same[order]


@dataclass(frozen=True)
class OneShotTasks:
    """T N-way one-shot tasks over a pool of images (positions into its labels).

    query int64 (T,); candidates int64 (T, N), one image of each of N distinct classes; answer int64 (T,):
    the column of ``candidates`` whose class is the query's (a different image of that class)."""

    query: np.ndarray
    candidates: np.ndarray
    answer: np.ndarray

    @property
    def n_way(self) -> int:
        return int(self.candidates.shape[1])

    def __len__(self) -> int:
        return len(self.query)


def sample_tasks(
    labels: np.ndarray,
    n_way: int,
    n_tasks: int,
    rng: np.random.Generator,
    class_names: Sequence[str] | None = None,
) -> OneShotTasks:
    """``n_tasks`` N-way one-shot tasks from the pool with int ``labels``: each draws N distinct classes,
    the query's class uniformly among them, the query and its matching candidate as two distinct images of
    that class, one image of each other class, and a random order of the candidates."""
    _check_count("tasks", n_tasks)
    by_class = _classes_with_images(labels, class_names)
    classes = np.array(sorted(by_class))
    if isinstance(n_way, bool) or not isinstance(n_way, (int, np.integer)) or n_way < 2:
        raise TransferlabError(f"n_way={n_way!r} is invalid; a one-shot task needs N >= 2 candidates")
    if n_way > len(classes):
        raise TransferlabError(
            f"n_way={n_way} is larger than the {len(classes)} test classes available; give n_way <= {len(classes)} "
            "or more target classes"
        )
    query = np.empty(n_tasks, dtype=np.int64)
    candidates = np.empty((n_tasks, n_way), dtype=np.int64)
    answer = np.empty(n_tasks, dtype=np.int64)
    for t in range(n_tasks):
        chosen = rng.choice(classes, n_way, replace=False)  # chosen[0] is the query's class
        query[t], match = rng.choice(by_class[chosen[0]], 2, replace=False)
        row = [match] + [rng.choice(by_class[c]) for c in chosen[1:]]
        order = rng.permutation(n_way)
        candidates[t] = np.asarray(row)[order]
        answer[t] = int(np.flatnonzero(order == 0)[0])
    return OneShotTasks(query, candidates, answer)


# ------------------------------------------------------------------------------------- the twins


HEADS = ("l1", "fc")  # how |h(a) - h(b)| becomes z (see SiameseNet)


class SiameseNet(nn.Module):
    """Twin network with shared weights.

    encoder: maps one image batch (B, ...) to features (B, in_features) (a backbone's ``forward_features``),
    or None when the inputs are already features (the frozen backbone's cached ones).
    Layers: Linear(in_features, hidden) + sigmoid = h; d = |h(a) - h(b)| (B, hidden); then z (B,), the
    logit of P(same) = sigmoid(z), by ``head``:
    - "l1" (default): z = b - sum_i |w_i| d_i, a weighted L1 distance whose weights are >= 0, so a larger
      distance never raises P(same) and the twins stay a metric on classes never seen (|w| rather than
      e.g. softplus(w): its gradient has the size of an unconstrained layer's, so it trains as fast). Why: with the
      few training classes of the studies (3), an unconstrained layer learns which training class a pair
      is from instead of a distance; measured on 8 Gaussian classes (tests/test_siamese.py), training on 4
      drops 4-way one-shot accuracy on the other 4 from 1.00 to 0.44 unconstrained and keeps 1.00 here.
    - "fc": z = w . d + b, an unconstrained fully connected layer (Koch et al. and the VGG16 study).
    ``forward(pairs (B, 2, ...))`` returns logits (B, 2) = (0, z), so that softmax cross-entropy on label
    1 = same is the binary cross-entropy of sigmoid(z). Symmetric: d is the same for (a, b) and (b, a)."""

    def __init__(
        self, in_features: int, hidden: int, encoder: nn.Module | None = None, head: str = "l1"
    ) -> None:
        super().__init__()
        if head not in HEADS:
            raise TransferlabError(f"siamese head {head!r} is unknown; valid: {', '.join(HEADS)}")
        self.encoder, self.head = encoder, head
        self.embed = nn.Sequential(nn.Linear(in_features, hidden), nn.Sigmoid())
        self.out = nn.Linear(hidden, 1)

    def embedding(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) images or features -> h (B, hidden), the twin's output before the distance."""
        return self.embed(x if self.encoder is None else self.encoder(x))

    def similarity(self, h_a: torch.Tensor, h_b: torch.Tensor) -> torch.Tensor:
        """Embeddings (B, hidden) x 2 -> z (B,): the logit of P(same)."""
        distance = (h_a - h_b).abs()
        if self.head == "fc":
            return self.out(distance).squeeze(1)
        return self.out.bias - distance @ self.out.weight[0].abs()

    @torch.no_grad()
    def centre_bias(self, pairs: torch.Tensor) -> SiameseNet:
        """Shift the output bias so that the mean z over ``pairs`` (B, 2, ...) is 0: P(same) starts near 1/2
        on balanced pairs. Why: at init the weighted distance is large (a sum over ``hidden`` units), and a
        bias learning at lr per step would take hundreds of steps to reach it. Returns self."""
        was_training = self.training
        self.eval()
        try:
            self.out.bias -= self(pairs)[:, 1].mean()
        finally:
            self.train(was_training)
        return self

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        """(B, 2, ...) pairs -> logits (B, 2) = (0, z). Both twins go through the encoder in one batch."""
        b = pairs.shape[0]
        h = self.embedding(pairs.reshape(2 * b, *pairs.shape[2:])).reshape(b, 2, -1)
        z = self.similarity(h[:, 0], h[:, 1])
        return torch.stack([torch.zeros_like(z), z], dim=1)


@torch.inference_mode()
def embeddings(net: SiameseNet, inputs: torch.Tensor, transform=None, batch_size: int = 256) -> torch.Tensor:
    """h (N, hidden) of every input (N, ...) in eval mode (``transform(batch)`` first, if given); the
    network's train/eval mode is restored afterwards."""
    was_training = net.training
    net.eval()
    try:
        out = [
            net.embedding(
                inputs[s : s + batch_size] if transform is None else transform(inputs[s : s + batch_size])
            )
            for s in range(0, len(inputs), batch_size)
        ]
    finally:
        net.train(was_training)
    return torch.cat(out) if out else torch.empty(0, net.out.in_features)


@torch.inference_mode()
def task_scores(net: SiameseNet, h: torch.Tensor, tasks: OneShotTasks) -> torch.Tensor:
    """z (T, N): the similarity logit of each task's query with each of its candidates, from the pool's
    embeddings ``h`` (P, hidden): :func:`support_scores` of the same tasks read as K = 1 tasks."""
    return support_scores(net, h, FewShotTasks.from_one_shot(tasks))


@torch.inference_mode()
def support_scores(net: SiameseNet, h: torch.Tensor, tasks) -> torch.Tensor:
    """z (T, N) for N-way K-shot tasks (:class:`transferlab.fewshot.FewShotTasks`): the mean similarity
    logit of each task's query with the K support images of each class, from the pool's embeddings ``h``
    (P, hidden). At K = 1 it is :func:`task_scores` on the same tasks. Why the mean logit: it is the
    log-odds of "same" averaged over the supports, so one far-off support cannot veto a class."""
    t, n, k = tasks.support.shape
    query = h[torch.as_tensor(tasks.query)].unsqueeze(1).expand(-1, n * k, -1)
    support = h[torch.as_tensor(tasks.support.reshape(t, n * k))]
    was_training = net.training
    net.eval()
    try:
        z = net.similarity(query.reshape(-1, h.shape[1]), support.reshape(-1, h.shape[1]))
    finally:
        net.train(was_training)
    return z.reshape(t, n, k).mean(2)


def one_shot_correct(scores: torch.Tensor | np.ndarray, tasks: OneShotTasks) -> np.ndarray:
    """bool (T,): whether each task's highest-scoring candidate is its answer (ties: the first)."""
    return np.asarray(scores).argmax(1) == tasks.answer


def nearest_neighbour_correct(vectors: np.ndarray, tasks: OneShotTasks) -> np.ndarray:
    """bool (T,): Koch's 1-NN comparison on ``vectors`` (P, D) of the pool (raw pixels flattened, or
    features): is the candidate at the smallest Euclidean distance from the query the answer? (The few-shot
    1-NN of :mod:`transferlab.fewshot` on the same tasks read as K = 1 tasks.)"""
    return fewshot.nearest_neighbour_correct(vectors, FewShotTasks.from_one_shot(tasks))


def wilson_interval(correct: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """(low, high) Wilson score interval of a proportion ``correct`` / ``n`` (independent tasks)."""
    if n < 1:
        raise TransferlabError(f"a confidence interval needs at least one task, got n={n}")
    z = float(scipy_stats.norm.ppf(0.5 + confidence / 2))
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy_metrics(prefix: str, correct: np.ndarray) -> dict[str, float]:
    """{prefix_accuracy, prefix_ci_low, prefix_ci_high} for a boolean (T,) of correct tasks."""
    k, n = int(np.sum(correct)), len(correct)
    low, high = wilson_interval(k, n)
    return {f"{prefix}_accuracy": k / n, f"{prefix}_ci_low": low, f"{prefix}_ci_high": high}
