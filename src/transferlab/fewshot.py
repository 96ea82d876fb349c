"""N-way K-shot baselines on fixed vectors (raw pixels or cached backbone features), scored on the same
tasks as the Siamese network.

Claim: on frozen pretrained features, a nearest-centroid classifier after centring and L2 normalisation
(SimpleShot; Wang et al. 2019) is a strong few-shot baseline, often as good as meta-learnt metrics, and it
costs nothing to train. Evidence: Wang et al. (miniImageNet 1-shot 49.7 -> 62.8 % with centring + L2 on the
same features); easyfsl's baselines; here tests/test_fewshot.py (Gaussian clusters: ~1.0; real digits
well above chance) and the one-shot benchmark (benchmarks/studies/one-shot.toml).

Pieces:
- :class:`FewShotTasks` / :func:`sample_fewshot_tasks`: T tasks, each N distinct classes, K support
  images per class and one query of one of those classes (a different image from its supports), seeded.
  One query per task, so tasks are independent and a Wilson interval over them is valid.
  :meth:`FewShotTasks.from_one_shot` views the Siamese network's one-shot tasks as K = 1 tasks, so every
  method is scored on exactly the same tasks.
- scorers, each ``(vectors (P, D), tasks) -> bool (T,)`` correct per task:
  :func:`nearest_neighbour_correct` (1-NN over all N*K supports, Euclidean; Koch's baseline),
  :func:`nearest_centroid_correct` (prototypical-network rule: nearest class mean, squared Euclidean,
  no training; at K = 1 it is 1-NN), :func:`simpleshot_correct` (subtract ``centre``, the mean feature
  of the training classes, L2-normalise, then nearest centroid).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferlab.errors import TransferlabError

METHODS = ("nn", "protonet", "simpleshot")  # the scorers below, by the short names used in metric keys


@dataclass(frozen=True)
class FewShotTasks:
    """T N-way K-shot tasks over a pool of P vectors (positions into it).

    support int64 (T, N, K): K images of each of the task's N classes (column n = candidate class n);
    query int64 (T,): one image of the class in column ``answer`` int64 (T,), never one of its supports."""

    support: np.ndarray
    query: np.ndarray
    answer: np.ndarray

    @property
    def n_way(self) -> int:
        return int(self.support.shape[1])

    @property
    def k_shot(self) -> int:
        return int(self.support.shape[2])

    def __len__(self) -> int:
        return len(self.query)

    @classmethod
    def from_one_shot(cls, tasks) -> FewShotTasks:
        """The same tasks as a :class:`transferlab.siamese.OneShotTasks` (candidates (T, N) -> K = 1)."""
        return cls(
            np.asarray(tasks.candidates)[:, :, None], np.asarray(tasks.query), np.asarray(tasks.answer)
        )


def _whole(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise TransferlabError(f"{name}={value!r} is invalid; give a whole number >= {minimum}")


def sample_fewshot_tasks(
    labels: np.ndarray,
    n_way: int,
    k_shot: int,
    n_tasks: int,
    rng: np.random.Generator,
    class_names: Sequence[str] | None = None,
) -> FewShotTasks:
    """``n_tasks`` N-way K-shot tasks from the pool with int ``labels`` (P,): each draws N distinct classes,
    K + 1 distinct images of the query's class (K supports and the query) and K of every other, and shuffles
    the class columns. Needs N classes with at least K + 1 images each."""
    _whole("n_way", n_way, 2)
    _whole("k_shot", k_shot, 1)
    _whole("tasks", n_tasks, 1)
    labels = np.asarray(labels)
    by_class = {int(c): np.flatnonzero(labels == c) for c in np.unique(labels)}
    short = [c for c, positions in by_class.items() if len(positions) < k_shot + 1]
    if short:
        c = short[0]
        name = class_names[c] if class_names is not None and 0 <= c < len(class_names) else str(c)
        raise TransferlabError(
            f"class {name!r} has {len(by_class[c])} image(s); {k_shot}-shot tasks need at "
            f"least {k_shot + 1} per class (k_shot supports and a query); give a smaller "
            "k_shot or more test images per class"
        )
    classes = np.array(sorted(by_class))
    if n_way > len(classes):
        raise TransferlabError(
            f"n_way={n_way} is larger than the {len(classes)} classes available; give n_way <= {len(classes)}"
        )
    support = np.empty((n_tasks, n_way, k_shot), dtype=np.int64)
    query = np.empty(n_tasks, dtype=np.int64)
    answer = np.empty(n_tasks, dtype=np.int64)
    for t in range(n_tasks):
        chosen = rng.choice(classes, n_way, replace=False)  # chosen[0] is the query's class
        drawn = rng.choice(by_class[chosen[0]], k_shot + 1, replace=False)
        query[t] = drawn[0]
        rows = [drawn[1:]] + [rng.choice(by_class[c], k_shot, replace=False) for c in chosen[1:]]
        order = rng.permutation(n_way)
        support[t] = np.stack(rows)[order]
        answer[t] = int(np.flatnonzero(order == 0)[0])
    return FewShotTasks(support, query, answer)


def _as_matrix(vectors: np.ndarray) -> np.ndarray:
    x = np.asarray(vectors, dtype=np.float64)
    return x.reshape(len(x), -1)


def nearest_neighbour_correct(vectors: np.ndarray, tasks: FewShotTasks) -> np.ndarray:
    """bool (T,): is the support image nearest (Euclidean) to the query one of the answer's class?"""
    x = _as_matrix(vectors)
    t, n, k = tasks.support.shape
    distances = np.linalg.norm(x[tasks.support] - x[tasks.query][:, None, None, :], axis=3)  # (T, N, K)
    nearest = distances.reshape(t, n * k).argmin(1) // k
    return nearest == tasks.answer


def _centroid_correct(x: np.ndarray, tasks: FewShotTasks) -> np.ndarray:
    centroids = x[tasks.support].mean(axis=2)  # (T, N, D)
    distances = ((centroids - x[tasks.query][:, None, :]) ** 2).sum(axis=2)
    return distances.argmin(1) == tasks.answer


def nearest_centroid_correct(vectors: np.ndarray, tasks: FewShotTasks) -> np.ndarray:
    """bool (T,): prototypical-network rule on fixed vectors: the class whose mean support vector is nearest
    (squared Euclidean) to the query. At K = 1 it equals :func:`nearest_neighbour_correct`."""
    return _centroid_correct(_as_matrix(vectors), tasks)


def simpleshot_transform(vectors: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """SimpleShot's "CL2N": (P, D) vectors minus ``centre`` (D,), each row scaled to unit L2 norm (a zero
    row stays zero). Why centre first: pretrained features are all positive (post-ReLU averages), so raw
    cosine similarities crowd near 1; subtracting the training classes' mean spreads them out."""
    x = _as_matrix(vectors) - np.asarray(centre, dtype=np.float64).reshape(1, -1)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def simpleshot_correct(vectors: np.ndarray, tasks: FewShotTasks, centre: np.ndarray) -> np.ndarray:
    """bool (T,): SimpleShot (Wang et al. 2019): nearest centroid on centred, L2-normalised vectors.
    ``centre`` (D,): the mean vector of the training (base) classes' images, never of the test classes."""
    x = _as_matrix(vectors)
    centre = np.asarray(centre, dtype=np.float64).ravel()
    if centre.shape[0] != x.shape[1]:
        raise TransferlabError(
            f"SimpleShot's centre has {centre.shape[0]} dimensions and the vectors "
            f"{x.shape[1]}; give the mean of the training classes' vectors"
        )
    return _centroid_correct(simpleshot_transform(x, centre), tasks)
