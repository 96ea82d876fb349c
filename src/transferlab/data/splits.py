"""Which images a run may see: class-disjoint source/target sides, fixed validation/test holdouts, and
nested stratified training subsets.

How nestedness is guaranteed: for every class, one seeded permutation of its training images is drawn
(the generator is keyed by ``(seed, original class id)``, so it does not depend on which other classes
or sizes are in play). The first ``v_c`` images are validation; a training subset of ``m_c`` images per
class is the next ``m_c``. Two sizes with the same seed therefore share a prefix: the smaller subset is
inside the larger, and validation never changes with size.

Test: the dataset's official test split. A dataset without one (``digits``, plain folders) gets a fixed
stratified test set carved with a seed that never varies (``TEST_SEED``), so every run of every study on
that dataset is scored on the same images.
"""

from __future__ import annotations

import base64
import hashlib
import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError, options_hint

TEST_SEED = 20_240_601  # fixed on purpose: a carved test set must be the same for every run seed
_VAL_SALT, _TEST_SALT = 1, 2
INDICES_ENCODING = "zlib-delta-i8-base64"  # see encode_indices; named in every saved record


# ------------------------------------------------------------------------------ saved indices


def encode_indices(values: np.ndarray) -> str:
    """A 1-D int array as compact text: base64 of the zlib-compressed little-endian int64 differences
    (first value, then each step). A sorted index set of 54,000 images takes ~9 KB, not ~300 KB of digits."""
    array = np.asarray(values, dtype=np.int64).ravel()
    steps = np.diff(array, prepend=np.int64(0)).astype("<i8")
    return base64.b64encode(zlib.compress(steps.tobytes())).decode("ascii")


def decode_indices(text: str) -> np.ndarray:
    """The int64 array that :func:`encode_indices` wrote as ``text``."""
    steps = np.frombuffer(zlib.decompress(base64.b64decode(text)), dtype="<i8")
    return np.cumsum(steps, dtype=np.int64)


def hash_indices(classes: Sequence[int], train: np.ndarray, val: np.ndarray, test: np.ndarray) -> str:
    """sha256 of the classes and the three index sets (order within a set ignored): :meth:`TaskSplit.indices_hash`."""
    h = hashlib.sha256(repr(tuple(int(c) for c in classes)).encode())
    for part, values in (("train", train), ("val", val), ("test", test)):
        h.update(part.encode())
        h.update(np.sort(np.asarray(values)).astype("<i8").tobytes())
    return h.hexdigest()


def indices_from_record(record: dict) -> dict[str, np.ndarray]:
    """{"train", "val", "test"} int64 arrays of a record written by :meth:`TaskSplit.indices_record`."""
    if record.get("encoding") != INDICES_ENCODING:
        raise TransferlabError(
            f"saved indices use encoding {record.get('encoding')!r}; this version reads {INDICES_ENCODING!r}"
        )
    return {part: decode_indices(record[part]) for part in ("train", "val", "test")}


def record_indices_hash(record: dict) -> str:
    """The ``indices_hash`` of the images a saved :meth:`TaskSplit.indices_record` names."""
    parts = indices_from_record(record)
    return hash_indices(record["classes"], parts["train"], parts["val"], parts["test"])


# --------------------------------------------------------------------------- classes and sides


def _class_aliases(name: str) -> set[str]:
    """'T-shirt/top' answers to 't-shirt/top', 't-shirt' and 'top'; 'Ankle boot' to 'ankle boot'."""
    low = name.strip().lower()
    return {low, *(part.strip() for part in low.split("/"))}


def resolve_classes(
    image_set: ImageSet, spec: str | Sequence[str | int], what: str = "class list"
) -> list[int]:
    """Class indices from names or indices: ``"sandal,bag"``, ``"5,8"``, ``["Sandal", 8]``. Order kept."""
    items = [s.strip() for s in spec.split(",")] if isinstance(spec, str) else list(spec)
    out: list[int] = []
    for item in items:
        if isinstance(item, (int, np.integer)) or (isinstance(item, str) and item.lstrip("-").isdigit()):
            index = int(item)
            if not 0 <= index < image_set.num_classes:
                raise TransferlabError(
                    f"{what}: class index {index} is out of range for {image_set.name}; "
                    f"valid: 0..{image_set.num_classes - 1}"
                )
        else:
            matches = [
                i
                for i, n in enumerate(image_set.class_names)
                if str(item).strip().lower() in _class_aliases(n)
            ]
            if len(matches) != 1:
                problem = "is unknown" if not matches else "is ambiguous"
                raise TransferlabError(
                    f"{what}: class {item!r} {problem} in {image_set.name}"
                    f"{options_hint(str(item), image_set.class_names)} (or indices 0..{image_set.num_classes - 1})"
                )
            index = matches[0]
        if index in out:
            raise TransferlabError(f"{what}: class {image_set.class_names[index]!r} is listed twice")
        out.append(index)
    if not out:
        raise TransferlabError(f"{what} is empty; give class names or indices separated by commas")
    return out


@dataclass(frozen=True)
class ClassSplit:
    """Two class-disjoint sides of one dataset: ``source`` (what a source model learns) and ``target``."""

    source: tuple[int, ...]
    target: tuple[int, ...]

    def swapped(self) -> ClassSplit:
        return ClassSplit(self.target, self.source)

    def side(self, name: str) -> tuple[int, ...]:
        if name not in ("source", "target"):
            raise TransferlabError(f"side {name!r} is unknown; valid: source, target")
        return self.source if name == "source" else self.target


def class_split(
    image_set: ImageSet,
    source: str | Sequence[str | int] | None = None,
    target: str | Sequence[str | int] | None = None,
    seed: int = 0,
    swap: bool = False,
) -> ClassSplit:
    """Class-disjoint sides. Neither given: seeded random halves. One given: the other side is every
    remaining class (the studies' "all but target" source). Each side needs at least 2 classes."""
    n = image_set.num_classes
    if source is None and target is None:
        perm = np.random.default_rng([seed, 7]).permutation(n)
        src, tgt = sorted(perm[: n // 2].tolist()), sorted(perm[n // 2 :].tolist())
    else:
        src = resolve_classes(image_set, source, "source classes") if source is not None else None
        tgt = resolve_classes(image_set, target, "target classes") if target is not None else None
        if src is None:
            src = [c for c in range(n) if c not in tgt]
        if tgt is None:
            tgt = [c for c in range(n) if c not in src]
        overlap = sorted(set(src) & set(tgt))
        if overlap:
            names = ", ".join(image_set.class_names[c] for c in overlap)
            raise TransferlabError(
                f"source and target classes overlap ({names}); the two sides must be disjoint"
            )
    for side, classes in (("source", src), ("target", tgt)):
        if len(classes) < 2:
            raise TransferlabError(
                f"the {side} side has {len(classes)} class(es) ({', '.join(image_set.class_names[c] for c in classes) or 'none'}); "
                "each side needs at least 2 to classify"
            )
    split = ClassSplit(tuple(src), tuple(tgt))
    return split.swapped() if swap else split


# ------------------------------------------------------------------------------ task holdouts


@dataclass(frozen=True)
class TaskSplit:
    """The images of one run. Index arrays are int64 positions in the ImageSet; the run's label of an
    image is the position of its original class in ``classes`` (labels re-indexed per side)."""

    classes: tuple[int, ...]
    class_names: tuple[str, ...]
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    pool: int  # training images available before subsampling (after validation was carved)
    seed: int
    size: float | None = None
    per_class: int | None = None

    def labels(self, image_set: ImageSet, part: str) -> np.ndarray:
        """Re-indexed int64 labels of ``part`` ("train", "val" or "test")."""
        lookup = np.full(image_set.num_classes, -1, dtype=np.int64)
        lookup[list(self.classes)] = np.arange(len(self.classes))
        return lookup[image_set.labels[self._part(part)]]

    def _part(self, part: str) -> np.ndarray:
        if part not in ("train", "val", "test"):
            raise TransferlabError(f"part {part!r} is unknown; valid: train, val, test")
        return getattr(self, part)

    def counts(self, image_set: ImageSet) -> dict[str, list[int]]:
        """Images per (re-indexed) class in each part."""
        k = len(self.classes)
        return {
            p: np.bincount(self.labels(image_set, p), minlength=k).tolist() for p in ("train", "val", "test")
        }

    def indices_hash(self) -> str:
        """sha256 of the classes and the three index sets: two runs saw the same images iff equal."""
        return hash_indices(self.classes, self.train, self.val, self.test)

    def indices_record(self) -> dict:
        """The classes and the three index sets, compact (:func:`encode_indices`), for a RunResult:
        :func:`indices_from_record` reads them back and :func:`record_indices_hash` re-hashes them."""
        return {
            "encoding": INDICES_ENCODING,
            "classes": [int(c) for c in self.classes],
            **{part: encode_indices(self._part(part)) for part in ("train", "val", "test")},
        }

    @property
    def size_label(self) -> str:
        return f"{self.per_class}/class" if self.per_class is not None else f"{100 * (self.size or 1.0):g}%"

    def to_dict(self) -> dict:
        """JSON-ready, exact (saved with results so the images used can be recovered)."""
        return {
            "classes": list(self.classes),
            "class_names": list(self.class_names),
            "pool": self.pool,
            "seed": self.seed,
            "size": self.size,
            "per_class": self.per_class,
            "train": self.train.tolist(),
            "val": self.val.tolist(),
            "test": self.test.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> TaskSplit:
        arrays = {p: np.asarray(d[p], dtype=np.int64) for p in ("train", "val", "test")}
        return cls(
            tuple(d["classes"]),
            tuple(d["class_names"]),
            pool=d["pool"],
            seed=d["seed"],
            size=d["size"],
            per_class=d["per_class"],
            **arrays,
        )


def _class_order(indices: np.ndarray, seed: int, class_id: int, salt: int) -> np.ndarray:
    """A permutation of one class's images that depends only on (seed, class id, purpose)."""
    return indices[np.random.default_rng([seed, class_id, salt]).permutation(len(indices))]


def _count(value: float | int, available: int) -> int:
    """A validation/test size: fraction in (0, 1) of ``available``, or an absolute count >= 0."""
    if isinstance(value, float) and 0 < value < 1:
        return math.floor(value * available + 0.5)
    return int(value)


def _check_holdout(name: str, value: float | int) -> None:
    ok = (isinstance(value, float) and 0 <= value < 1) or (isinstance(value, int) and value >= 0)
    if not ok or isinstance(value, bool):
        raise TransferlabError(
            f"{name}={value!r} is invalid; give a fraction in [0, 1) of each class or a whole count per class >= 0"
        )


def subset_counts(
    pool_counts: dict[int, int], size: float | None, per_class: int | None, class_names: Sequence[str]
) -> dict[int, int]:
    """Images per class for a training subset: ``size`` = fraction of each class's pool (stratified),
    or ``per_class`` = the same count for every class. Errors say how to fix an impossible request."""
    if (size is None) == (per_class is None):
        raise TransferlabError("give exactly one of size (a fraction in (0, 1]) and per_class (a count >= 1)")
    if per_class is not None:
        if isinstance(per_class, bool) or not isinstance(per_class, (int, np.integer)) or per_class < 1:
            raise TransferlabError(f"per_class={per_class!r} is invalid; give a whole number of images >= 1")
        short = {c: n for c, n in pool_counts.items() if n < per_class}
        if short:
            c, n = min(short.items(), key=lambda kv: kv[1])
            raise TransferlabError(
                f"per_class={per_class} is more than class {class_names[c]!r} has: {n} training images after "
                f"validation was held out; the largest possible is {min(pool_counts.values())}"
            )
        return {c: int(per_class) for c in pool_counts}
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0 < size <= 1:
        raise TransferlabError(
            f"size={size!r} is invalid; give a fraction in (0, 1] (e.g. 0.01 for 1%) or use per_class"
        )
    counts = {c: math.floor(size * n + 0.5) for c, n in pool_counts.items()}
    if min(counts.values()) < 1:
        c = min(pool_counts, key=pool_counts.get)
        smallest = 0.5 / pool_counts[c]
        raise TransferlabError(
            f"size={size:g} gives {size * pool_counts[c]:.2f} images for class {class_names[c]!r} "
            f"({pool_counts[c]} in its training pool): fewer than one per class. Use a fraction of at least "
            f"{smallest:.2g}, or --per-class N for an exact count"
        )
    return counts


def make_task(
    image_set: ImageSet,
    classes: Sequence[int] | None = None,
    *,
    size: float | None = 1.0,
    per_class: int | None = None,
    val_size: float | int = 0.1,
    test_size: float | int = 0.2,
    test_per_class: int | None = None,
    seed: int = 0,
) -> TaskSplit:
    """Train/validation/test indices for one run on ``classes`` (default: all).

    val_size: fraction of each class's training images, or a count per class (0 = none); carved with
    ``seed`` and independent of ``size``. test_size: used only when the dataset has no official test
    split (fraction or count per class, carved with the fixed ``TEST_SEED``). test_per_class: cap the
    test set per class (nested, fixed) to make evaluation cheaper; None = all.
    ``size``/``per_class``: the training subset (see :func:`subset_counts`); pass ``per_class`` alone
    to use counts.
    """
    if per_class is not None:
        size = None
    _check_holdout("val_size", val_size)
    _check_holdout("test_size", test_size)
    classes = list(range(image_set.num_classes)) if classes is None else [int(c) for c in classes]
    has_test = bool((image_set.split == "test").any())
    train_parts, val_parts, test_parts, pools = {}, {}, {}, {}
    for c in classes:
        of_class = np.flatnonzero(image_set.labels == c)
        marked_train = of_class[image_set.split[of_class] == "train"]
        if has_test:
            test_c = of_class[image_set.split[of_class] == "test"]
            test_c = _class_order(test_c, TEST_SEED, c, _TEST_SALT)  # a fixed order, so caps are nested
        else:
            order = _class_order(marked_train, TEST_SEED, c, _TEST_SALT)
            n_test = _count(test_size, len(order))
            test_c, marked_train = order[:n_test], order[n_test:]
        if test_per_class is not None:
            test_c = test_c[:test_per_class]
        order = _class_order(marked_train, seed, c, _VAL_SALT)
        n_val = _count(val_size, len(order))
        if n_val >= len(order):
            raise TransferlabError(
                f"val_size={val_size!r} leaves no training images for class {image_set.class_names[c]!r} "
                f"({len(order)} available)"
            )
        val_parts[c], pools[c], test_parts[c] = order[:n_val], order[n_val:], test_c
        if len(test_c) == 0:
            raise TransferlabError(
                f"class {image_set.class_names[c]!r} has no test images in {image_set.name}"
            )
    counts = subset_counts({c: len(p) for c, p in pools.items()}, size, per_class, image_set.class_names)
    for c in classes:
        train_parts[c] = pools[c][: counts[c]]

    def cat(parts: dict[int, np.ndarray]) -> np.ndarray:
        return np.sort(np.concatenate([parts[c] for c in classes])).astype(np.int64)

    return TaskSplit(
        classes=tuple(classes),
        class_names=tuple(image_set.class_names[c] for c in classes),
        train=cat(train_parts),
        val=cat(val_parts),
        test=cat(test_parts),
        pool=sum(len(p) for p in pools.values()),
        seed=seed,
        size=size,
        per_class=per_class,
    )
