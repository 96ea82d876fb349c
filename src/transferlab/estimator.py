"""``TransferClassifier``: a transferlab run as a scikit-learn classifier, for notebooks and pipelines.

``fit(X, y)`` trains one run (the same strategies, backbones and budgets as ``transferlab fit``) on every
image given (a validation carve aside for the heads that stop early on it) and keeps the trained model
(``model_``, a :class:`~transferlab.model.TrainedModel`); ``predict``/``predict_proba``/``score`` follow
the sklearn contract and ``sklearn.clone``, ``GridSearchCV`` and ``cross_val_score`` work on it.

What ``X`` may be (``fit`` and ``predict`` alike):

- a list of images, each a PIL image, a path to an image file, or an array (H, W), (H, W, 1|3|4);
  sizes may differ (each is brought to the first image's size, as ``transferlab predict`` does);
- an array (N, H, W, C) with C in {1, 3}, or (N, H, W) grey images;
- a 2-D array (n_samples, n_features): sklearn's table, each row a flattened image of ``image_shape``
  (default: a square grey image when n_features is a square number, else a 1-pixel-high strip), when
  the model was fitted on such a table; to a model fitted on images, ``predict`` takes a 2-D array as
  one (H, W) grey image.

Pixels: uint8 arrays, PIL images and files are 0..255. Float (and other numeric) arrays are mapped to
0..255 from ``pixel_range`` = (low, high); by default from the float training images' own minimum and
maximum, learned in ``fit`` (so a standardised table works) and applied unchanged in ``predict``, and
from [0, 1] (skimage's and torchvision's float convention) when the model learned uint8 images.

scikit-learn's estimator checks pass (tests/test_estimator.py) except ``check_methods_subset_invariance``:
float32 convolutions choose their algorithm by batch size, so a subset's probabilities differ from the
whole batch's in the fifth significant digit (the predicted classes agree); that check asks for 1e-7.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, column_or_1d

from transferlab.errors import TransferlabError, TransferlabWarning

# The run settings a TransferClassifier exposes as parameters (the rest go in ``settings``).
RUN_PARAMS = (
    "strategy",
    "backbone",
    "head",
    "input_size",
    "layer",
    "frozen",
    "lr",
    "epochs",
    "steps",
    "batch_size",
    "C",
    "augment",
    "weights",
    "seed",
    "device",
)
CLOSED_FORM_HEADS = ("logreg", "svm")  # no training loop, so no validation carve by default


def _image_array(item: Any, index: int) -> np.ndarray:
    """One list element (PIL image, path, array) -> uint8-or-numeric (H, W, C) array."""
    if isinstance(item, (str, os.PathLike)):
        from transferlab.data.readers import decode_files

        path = Path(item)
        if not path.is_file():
            raise TransferlabError(f"X[{index}]: image file {str(path)!r} does not exist")
        (array, _), *_ = decode_files([path])
        return array
    if hasattr(item, "convert") and hasattr(item, "mode"):  # a PIL image, without importing PIL eagerly
        image = item if item.mode in ("L", "RGB") else item.convert("RGBA" if "A" in item.mode else "RGB")
        item = np.asarray(image)
    array = np.asarray(item)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4) or min(array.shape[:2], default=0) < 1:
        raise TransferlabError(
            f"X[{index}] has shape {array.shape}; an image is (H, W) or (H, W, C) with C in 1, 3, 4"
        )
    if array.shape[2] == 4:  # RGBA: drop alpha (composited on black, what an RGB model would have seen)
        alpha = array[:, :, 3:].astype(np.float64) / (255.0 if array.dtype == np.uint8 else 1.0)
        array = (array[:, :, :3] * alpha).astype(array.dtype)
    return array


def _is_row(item: Any) -> bool:
    """A list element that is a table row (numbers), not an image (a path, a PIL image, a 2-D+ array)."""
    if isinstance(item, (str, os.PathLike)) or hasattr(item, "mode"):
        return False
    return np.ndim(item) == 1


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bring one (H, W, C) image to (height, width), as ``transferlab predict`` brings files to the
    training size (antialiased bilinear, on floats so that any pixel range survives)."""
    import torch

    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(
        x, size=(height, width), mode="bilinear", antialias=True, align_corners=False
    )
    out = x[0].permute(1, 2, 0).numpy()
    return np.clip(np.round(out), 0, 255).astype(np.uint8) if image.dtype == np.uint8 else out


class TransferClassifier(ClassifierMixin, BaseEstimator):
    """A transfer-learning image classifier with the sklearn contract.

    strategy, backbone, head, input_size, layer, frozen, lr, epochs, steps, batch_size, C, augment,
    weights, seed, device: the run settings of the same names (``transferlab run --help``; None = the
    strategy's default). val_size: validation carve per class for early stopping (None: 0 for the
    closed-form logreg/svm heads, else 0.1). image_shape: (H, W) or (H, W, C) of the rows of a 2-D X.
    pixel_range: (low, high) of float pixels, mapped to 0..255 (None: learned from float training
    images, else (0, 1)).
    settings: any other run setting, as a dict (e.g. ``{"per_class": 50}`` or ``{"l2_sp": 0.01}``).

    Attributes after fit: ``classes_``, ``model_`` (the TrainedModel: ``save(path)`` writes a file
    ``transferlab predict`` reads), ``result_`` (the RunResult dict of the fit), ``image_shape_`` (H, W, C
    of the images the model learned), ``pixel_range_``, ``n_features_in_`` (for a 2-D X).
    """

    def __init__(
        self,
        strategy: str = "extract",
        backbone: str | None = None,
        head: str | None = None,
        input_size: int | str | None = None,
        layer: str | int | None = None,
        frozen: int | None = None,
        lr: float = 1e-3,
        epochs: int | None = None,
        steps: int | None = None,
        batch_size: int = 50,
        C: float | None = None,
        augment: str | None = None,
        weights: str | None = None,
        seed: int = 0,
        device: str = "cpu",
        val_size: float | int | None = None,
        image_shape: tuple[int, ...] | None = None,
        pixel_range: tuple[float, float] | None = None,
        settings: dict | None = None,
    ) -> None:
        self.strategy = strategy
        self.backbone = backbone
        self.head = head
        self.input_size = input_size
        self.layer = layer
        self.frozen = frozen
        self.lr = lr
        self.epochs = epochs
        self.steps = steps
        self.batch_size = batch_size
        self.C = C
        self.augment = augment
        self.weights = weights
        self.seed = seed
        self.device = device
        self.val_size = val_size
        self.image_shape = image_shape
        self.pixel_range = pixel_range
        self.settings = settings

    # ------------------------------------------------------------------------------------ inputs

    def _table_shape(self, n_features: int) -> tuple[int, int, int]:
        if self.image_shape is not None:
            shape = tuple(int(v) for v in self.image_shape)
            if len(shape) == 2:
                shape = (*shape, 1)
            if len(shape) != 3 or shape[2] not in (1, 3) or int(np.prod(shape)) != n_features:
                raise TransferlabError(
                    f"image_shape={self.image_shape!r} does not hold the {n_features} features of a "
                    "row; give (H, W) or (H, W, C) with C in 1, 3 and H*W*C = n_features"
                )
            return shape  # type: ignore[return-value]
        side = int(round(np.sqrt(n_features)))
        return (side, side, 1) if side * side == n_features else (1, n_features, 1)

    def _as_images(self, X: Any, fitting: bool) -> np.ndarray:
        """X in any accepted form -> a numeric (N, H, W, C) array (not yet mapped to 0..255)."""
        if isinstance(X, (list, tuple)) and X and _is_row(X[0]):
            X = np.asarray(X)  # a list of rows: sklearn's table, as a list
        if isinstance(X, (list, tuple)):
            if not X:
                raise TransferlabError("X is an empty list; give at least one image")
            arrays = [_image_array(item, i) for i, item in enumerate(X)]
            height, width = arrays[0].shape[:2]
            channels = 3 if any(a.shape[2] == 3 for a in arrays) else 1
            out = []
            for a in arrays:
                if a.shape[:2] != (height, width):
                    a = _resize(a, height, width)
                out.append(np.repeat(a, 3, axis=2) if a.shape[2] == 1 and channels == 3 else a)
            numeric = any(a.dtype != np.uint8 for a in out)  # one float image makes the set numeric
            images = np.stack([a.astype(np.float32) if numeric else a for a in out])
            check_array(
                images.reshape(len(images), -1), dtype=None, ensure_all_finite=True
            )  # NaN/inf: one error
            return images
        if hasattr(X, "__array__") and getattr(X, "ndim", 2) in (3, 4) and not hasattr(X, "columns"):
            images = np.asarray(X)
            images = images[..., None] if images.ndim == 3 else images
            if images.shape[-1] not in (1, 3):
                raise TransferlabError(
                    f"X has shape {images.shape}; an image array is (N, H, W) or (N, H, W, C) "
                    "with C in 1, 3 (one image: pass [image] or image[None])"
                )
            check_array(images.reshape(len(images), -1), dtype=None, ensure_all_finite=True)
            return images
        if (
            not fitting
            and isinstance(X, np.ndarray)
            and X.ndim == 2
            and getattr(self, "n_features_in_", None) is None
        ):
            return self._as_images(
                [X], fitting
            )  # a model that learned images: a 2-D array is one (H, W) image
        table = check_array(X, dtype="numeric", ensure_all_finite=True, ensure_min_samples=1)
        if fitting:
            self.n_features_in_ = table.shape[1]
        elif getattr(self, "n_features_in_", None) is not None and table.shape[1] != self.n_features_in_:
            raise ValueError(
                f"X has {table.shape[1]} features, but {type(self).__name__} is expecting "
                f"{self.n_features_in_} features as input (a 2-D X is a table of flattened images, "
                "one per row; give one (H, W) image as [image] or image[None])"
            )
        shape = self._table_shape(table.shape[1]) if fitting else self.image_shape_
        return table.reshape(len(table), *shape)

    def _to_pixels(self, images: np.ndarray) -> np.ndarray:
        """Numeric (N, H, W, C) -> uint8 with the fitted pixel range (uint8 input passes through)."""
        if images.dtype == np.uint8:
            return images
        low, high = self.pixel_range_
        scaled = (images.astype(np.float64) - low) * (255.0 / (high - low))
        return np.clip(np.round(scaled), 0, 255).astype(np.uint8)

    # -------------------------------------------------------------------------------------- fit

    def _run_settings(self, n_classes: int) -> dict:
        settings = {name: getattr(self, name) for name in RUN_PARAMS if getattr(self, name) is not None}
        extra = dict(self.settings or {})
        clash = sorted(set(extra) & (set(RUN_PARAMS) | {"val_size", "dataset"}))
        if clash:
            raise TransferlabError(
                f"settings={self.settings!r} repeats {', '.join(clash)}, which are parameters of "
                "TransferClassifier (or fixed by fit); set them there"
            )
        settings.update(extra)
        if self.layer is not None:
            settings["layer"] = str(self.layer)
        head = settings.get("head") or (
            "logreg" if settings.get("strategy", "extract") == "extract" else None
        )
        settings["val_size"] = (
            (0 if head in CLOSED_FORM_HEADS else 0.1) if self.val_size is None else self.val_size
        )
        return settings

    def fit(self, X: Any, y: Any) -> TransferClassifier:
        """Train on images X with labels y (any hashable values); returns self."""
        from transferlab.data.imageset import ImageSet
        from transferlab.model import fit as fit_model
        from transferlab.runs import RunSpec

        for name in ("n_features_in_", "image_shape_", "pixel_range_"):
            self.__dict__.pop(name, None)
        y = column_or_1d(np.asarray(y) if not isinstance(y, np.ndarray) else y, warn=True)
        check_classification_targets(y)
        images = self._as_images(X, fitting=True)
        if len(images) != len(y):
            raise ValueError(
                f"X holds {len(images)} images but y has {len(y)} labels; give one label per image"
            )
        if len(images) < 2:
            raise ValueError(f"fit needs at least 2 images (one sample given: n_samples = {len(images)})")
        self.classes_, labels = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"fit needs at least 2 classes in y, got 1 class: {self.classes_[0]!r}")
        if self.pixel_range is not None:
            low, high = (float(v) for v in self.pixel_range)
        elif images.dtype == np.uint8:
            low, high = 0.0, 1.0  # for float images given to predict later
        else:
            low, high = float(images.min()), float(images.max())
        if not high > low:  # a constant image set: any range maps it to one grey level
            high = low + 1.0
        self.pixel_range_ = (low, high)
        self.image_shape_ = tuple(int(v) for v in images.shape[1:])
        pixels = self._to_pixels(images)
        # The split layer always scores a test part; the estimator has none to spare, so one image per class
        # is repeated as a stand-in test set (its accuracy is not reported) and every image can train.
        first = np.array([np.flatnonzero(labels == c)[0] for c in range(len(self.classes_))])
        data = ImageSet(
            images=np.concatenate([pixels, pixels[first]]),
            labels=np.concatenate([labels, labels[first]]),
            class_names=[str(c) for c in self.classes_],
            split=np.array(["train"] * len(pixels) + ["test"] * len(first)),
            name="TransferClassifier.fit",
            source="in-memory arrays",
        )
        spec = RunSpec.from_dict({"dataset": "in-memory", **self._run_settings(len(self.classes_))})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TransferlabWarning)
            self.model_, result = fit_model(spec, data)
        self.result_ = result.to_dict()
        return self

    # ---------------------------------------------------------------------------------- predict

    def predict_proba(self, X: Any) -> np.ndarray:
        """float (N, n_classes) class probabilities, columns in ``classes_`` order (an svm head's are its
        margins through a softmax: uncalibrated)."""
        check_is_fitted(self, "model_")
        pixels = self._to_pixels(self._as_images(X, fitting=False))
        if pixels.shape[3] != self.image_shape_[2] and self.image_shape_[2] == 3:
            pixels = np.repeat(
                pixels, 3, axis=3
            )  # grey input to a colour model; colour to grey is the model's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TransferlabWarning)  # other sizes are resized, as documented
            return self.model_.predict_proba(pixels).astype(np.float64)

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each image, (N,) of ``classes_``' type."""
        best = self.predict_proba(X).argmax(axis=1)  # first: it checks that the estimator is fitted
        return self.classes_[best]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True  # (N, H, W) image stacks
        return tags
