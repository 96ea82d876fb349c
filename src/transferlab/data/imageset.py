"""The one in-memory form of every dataset: uint8 NHWC images, int64 labels, class names, split marks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np

from transferlab.errors import TransferlabError

SPLIT_NAMES = ("train", "test")


@dataclass(eq=False)
class ImageSet:
    """A labelled image collection.

    images: uint8 (N, H, W, C), C in {1, 3}; labels: int64 (N,) in [0, len(class_names));
    split: "train" / "test" per image (the dataset's official split; datasets without one are all
    "train" and the split layer carves a fixed test set); name/source: where it came from.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]
    split: np.ndarray
    name: str = "unnamed"
    source: str = ""
    _fingerprint: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
            raise TransferlabError(
                f"{self.name}: images must be uint8 (N, H, W, C) with C in 1 or 3, got {images.dtype} {images.shape}"
            )
        if labels.ndim != 1 or len(labels) != len(images):
            raise TransferlabError(f"{self.name}: {len(images)} images but labels of shape {labels.shape}")
        labels = labels.astype(np.int64, copy=False)
        if len(labels) and (labels.min() < 0 or labels.max() >= len(self.class_names)):
            raise TransferlabError(
                f"{self.name}: labels span {labels.min()}..{labels.max()} but there are "
                f"{len(self.class_names)} class names"
            )
        split = np.asarray(self.split)
        if split.shape != labels.shape or not np.isin(split, SPLIT_NAMES).all():
            raise TransferlabError(
                f"{self.name}: split must be 'train'/'test' for each of the {len(labels)} images"
            )
        # Read-only views: loaders cache ImageSets, so nobody may change the pixels under a cache key.
        images, labels, split = images.view(), labels.view(), split.astype("<U5")
        for array in (images, labels, split):
            array.flags.writeable = False
        self.images, self.labels, self.split = images, labels, split
        self.class_names = [str(c) for c in self.class_names]

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def resolution(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        return int(self.images.shape[1]), int(self.images.shape[2])

    @property
    def channels(self) -> int:
        return int(self.images.shape[3])

    def indices(self, split: str) -> np.ndarray:
        """int64 indices of the images marked ``split`` ("train" or "test")."""
        if split not in SPLIT_NAMES:
            raise TransferlabError(f"split {split!r} is unknown; valid: {', '.join(SPLIT_NAMES)}")
        return np.flatnonzero(self.split == split).astype(np.int64)

    def class_counts(self, indices: np.ndarray | None = None) -> np.ndarray:
        """Images per class, int64 (num_classes,), over ``indices`` (default: all)."""
        labels = self.labels if indices is None else self.labels[indices]
        return np.bincount(labels, minlength=self.num_classes).astype(np.int64)

    def fingerprint(self) -> str:
        """sha256 over shape, pixels, labels, split and class names: the content key of this dataset."""
        if self._fingerprint is None:
            h = hashlib.sha256()
            h.update(repr((self.images.shape, self.class_names)).encode())
            h.update(np.ascontiguousarray(self.images).data)
            h.update(self.labels.astype("<i8").tobytes())
            h.update("".join(s[1] for s in self.split).encode())  # 'r'/'e': one byte per image
            self._fingerprint = h.hexdigest()
        return self._fingerprint

    def summary(self) -> dict:
        """JSON-ready description: counts, classes, resolution."""
        return {
            "name": self.name,
            "source": self.source,
            "images": len(self),
            "train": int((self.split == "train").sum()),
            "test": int((self.split == "test").sum()),
            "classes": self.num_classes,
            "class_names": list(self.class_names),
            "resolution": list(self.resolution),
            "channels": self.channels,
        }
