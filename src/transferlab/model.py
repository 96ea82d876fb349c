"""The deliverable: a trained model in one self-contained file, and predictions from image files.

``fit(spec)`` trains a :class:`~transferlab.runs.RunSpec` configuration with its strategy (the same code
as ``transferlab run``) and returns a :class:`TrainedModel`; ``save(path)`` writes one file;
``load_model(path)`` reads it back; ``predict(images)`` gives class names, ``predict_proba`` the
probabilities. The file is ``torch.save`` of a plain dict of tensors, strings and numbers (loadable with
``weights_only=True``, so opening a model never runs code from it):

- ``format`` / ``format_version``: "transferlab-model" / 1;
- ``architecture``, ``kind`` ("network": the whole trained backbone is the classifier; "features": a
  frozen backbone's pooled features at ``layer``/``pool`` feed a separate ``head``), ``num_classes``;
- ``state_dict``: every weight (the backbone's included, so no weight package is needed to load it);
- ``preprocessing``: the ImageTransform's settings; ``image``: the training images' height, width and
  channels (inputs are brought to these first, as the training images were);
- ``class_names``; ``outputs``: "probabilities" (softmax) or "scores" (an SVM's margins through a
  softmax: uncalibrated, said so);
- ``provenance``: dataset name and fingerprint, the resolved spec, transferlab and torch versions, the
  metrics of the fit (validation/test accuracy on the held-out parts), creation time.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferlab.data.imageset import ImageSet
from transferlab.data.transforms import ImageTransform, as_uint8_nhwc
from transferlab.errors import TransferlabError, TransferlabWarning

FORMAT, FORMAT_VERSION = "transferlab-model", 1
KINDS = ("network", "features")
# ITU-R BT.601 luma, the weights PIL's convert("L") uses: how an RGB input becomes grey for a grey model.
LUMA = (0.299, 0.587, 0.114)


class Standardize(nn.Module):
    """(x - mean) / scale per feature: sklearn's StandardScaler as a module (buffers, not parameters)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


def _linear_head(dim: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(Standardize(dim), nn.Linear(dim, num_classes))


def _sklearn_head_module(head, dim: int, num_classes: int) -> nn.Sequential:
    """A fitted logreg/svm head (StandardScaler + linear model) as the equivalent torch module."""
    scaler, linear_model = head.estimator_[0], head.estimator_[-1]
    module = _linear_head(dim, num_classes)
    module[0].mean.copy_(torch.as_tensor(scaler.mean_, dtype=torch.float32))
    module[0].scale.copy_(torch.as_tensor(scaler.scale_, dtype=torch.float32))
    coef, intercept = np.atleast_2d(linear_model.coef_), np.atleast_1d(linear_model.intercept_)
    if coef.shape[0] == 1:  # binary: sklearn keeps one row w for class 1
        if head.__class__.__name__ == "LogRegHead":  # P(1) = sigmoid(z) = softmax([0, z])[1]
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.array([0.0, intercept[0]])
        else:  # the svm head's scores are [-z, z] (models/heads.py _per_class)
            coef, intercept = np.vstack([-coef, coef]), np.array([-intercept[0], intercept[0]])
    module[1].weight.data.copy_(torch.as_tensor(coef, dtype=torch.float32))
    module[1].bias.data.copy_(torch.as_tensor(intercept, dtype=torch.float32))
    return module


def _build_head(spec: dict, dim: int, num_classes: int) -> nn.Module:
    """An untrained module of the extract head's shape (its weights come from the file)."""
    from transferlab.models.heads import FC_HIDDEN, GlobalAveragePool, fc_stack

    head = spec["head"]
    if head in FC_HIDDEN:
        return fc_stack(dim, num_classes, FC_HIDDEN[head], spec["activation"], spec["init"], spec["dropout"])
    if head == "gap":
        return nn.Sequential(GlobalAveragePool(), nn.Dropout(spec["dropout"]), nn.Linear(dim, num_classes))
    return _linear_head(dim, num_classes)  # logreg, svm


class _FeaturesAndHead(nn.Module):
    """A frozen backbone's pooled features at ``layer`` -> head -> logits."""

    def __init__(self, backbone, head: nn.Module, layer: int | str | None, pool: str) -> None:
        super().__init__()
        self.backbone, self.head, self.layer, self.pool = backbone, head, layer, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone.forward_features(x, self.layer, self.pool))


def _rebuild_network(spec: dict, num_classes: int):
    """The untrained network of a resolved spec (a strategy that exports a network), weights from the file:
    the backbone with its own classifier, or with the head the strategy module's ``attach_head`` puts on."""
    from transferlab.catalog import get_strategy
    from transferlab.models.registry import create_backbone
    from transferlab.runs import RunSpec

    model = create_backbone(spec["backbone"], pretrained=False, num_classes=num_classes)
    attach_head = getattr(get_strategy(spec["strategy"]).implementation, "attach_head", None)
    if attach_head is not None:
        attach_head(model, RunSpec.from_dict(spec), num_classes)
    return model


@dataclass
class InputNote:
    """What was done to the inputs to match the training images (said to the user)."""

    resized: int = 0  # images brought from another size to the training height x width
    to_grey: int = 0  # RGB images converted to grey (the model learned grey images)
    sizes: tuple = ()  # the distinct input sizes seen (H, W)

    def messages(self, image: dict) -> list[str]:
        out = []
        if self.resized:
            seen = ", ".join(f"{h}x{w}" for h, w in self.sizes[:3]) + (", ..." if len(self.sizes) > 3 else "")
            out.append(
                f"resized {self.resized} image(s) ({seen}) to the training size {image['height']}x{image['width']}"
            )
        if self.to_grey:
            out.append(
                f"converted {self.to_grey} RGB image(s) to grey (the model was trained on grey images)"
            )
        return out


class TrainedModel:
    """A trained classifier with its preprocessing: ``predict(images)`` -> class names,
    ``predict_proba(images)`` -> (N, K) probabilities. images: uint8 (N, H, W, C), any H, W, C in {1, 3}."""

    def __init__(self, module: nn.Module, payload: dict) -> None:
        self.module = module.eval()
        self.payload = payload
        self.classes_ = np.array(payload["class_names"])
        p = payload["preprocessing"]
        self.transform = ImageTransform(
            p["resize"], p["crop"], tuple(p["mean"]), tuple(p["std"]), p["interpolation"]
        )

    @property
    def provenance(self) -> dict:
        return self.payload["provenance"]

    @property
    def outputs(self) -> str:
        return self.payload["outputs"]

    def prepare(self, images: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, InputNote]:
        """Bring uint8 (N, H, W, C) inputs to the training images' size and channels (as uint8 NHWC)."""
        pixels = as_uint8_nhwc(images)
        image = self.payload["image"]
        note = InputNote()
        if pixels.shape[3] == 3 and image["channels"] == 1:
            luma = torch.tensor(LUMA).view(1, 1, 1, 3)
            pixels = (pixels.float() * luma).sum(3, keepdim=True).round().clamp(0, 255).to(torch.uint8)
            note.to_grey = len(pixels)
        if tuple(pixels.shape[1:3]) != (image["height"], image["width"]):
            note.resized, note.sizes = len(pixels), (tuple(pixels.shape[1:3]),)
            x = pixels.permute(0, 3, 1, 2).float()
            x = nn.functional.interpolate(
                x,
                size=(image["height"], image["width"]),
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
            pixels = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
        return pixels, note

    def logits(self, images: np.ndarray | torch.Tensor, batch_size: int = 256) -> np.ndarray:
        """float (N, K) scores before the softmax."""
        pixels, note = self.prepare(images)
        for message in note.messages(self.payload["image"]):
            warnings.warn(message, TransferlabWarning, stacklevel=3)
        out = []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                out.append(self.module(self.transform(pixels[start : start + batch_size])).float())
        return torch.cat(out).numpy() if out else np.empty((0, len(self.classes_)), np.float32)

    def predict_proba(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """float (N, K) softmax over the classes (see ``outputs`` for an SVM's uncalibrated scores)."""
        return torch.softmax(torch.from_numpy(self.logits(images)), 1).numpy()

    def predict(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class names (N,) of the most probable class."""
        return self.classes_[self.logits(images).argmax(1)]

    # ------------------------------------------------------------------------------------- files

    def save(self, path: str | os.PathLike) -> Path:
        """Write the model to ``path`` atomically (a reader never sees half a file); returns the path."""
        from transferlab import paths

        path = Path(path)
        payload = {
            **self.payload,
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()},
        }
        paths.atomic_write(path, lambda f: torch.save(payload, f))
        return path


def _payload(
    spec: dict,
    data: ImageSet,
    class_names: list[str],
    kind: str,
    num_classes: int,
    transform: ImageTransform,
    outputs: str,
    result,
) -> dict:
    from transferlab import __version__
    from transferlab.version import code_version

    metrics = {
        k: getattr(result, k)
        for k in (
            "val_accuracy",
            "test_accuracy",
            "train_accuracy",
            "n_train",
            "n_val",
            "n_test",
            "size_label",
            "indices_hash",
            "best_epoch",
            "epochs_run",
        )
    }
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "architecture": spec["backbone"],
        "kind": kind,
        "num_classes": num_classes,
        "layer": spec.get("layer"),
        "pool": spec.get("pool") or "avg",
        "preprocessing": {
            "resize": transform.resize,
            "crop": transform.crop,
            "mean": list(transform.mean),
            "std": list(transform.std),
            "interpolation": transform.interpolation,
        },
        "image": {"height": data.resolution[0], "width": data.resolution[1], "channels": data.channels},
        "class_names": list(class_names),
        "outputs": outputs,
        "provenance": {
            "dataset": data.name,
            "dataset_source": data.source,
            "dataset_fingerprint": data.fingerprint(),
            "spec": spec,
            "transferlab_version": __version__,
            "code_version": code_version(),
            "torch_version": torch.__version__,
            "metrics": metrics,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    }
    # Plain JSON types only (numpy scalars would make the file unloadable with weights_only=True).
    return json.loads(json.dumps(payload, default=_plain))


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not a plain value")


def fit(spec, data: ImageSet | None = None, *, progress: bool = False) -> tuple[TrainedModel, object]:
    """Train ``spec`` (a RunSpec) with its strategy and return (the model, the RunResult of that run:
    validation and test accuracy on the held-out parts). Bad input raises TransferlabError; a run that
    fails while training raises it too (nothing to save)."""
    from transferlab.catalog import get_head, get_strategy, list_strategies
    from transferlab.data.datasets import load_dataset
    from transferlab.models.registry import create_backbone
    from transferlab.strategies.base import Fitted
    from transferlab.version import code_version

    spec = spec.resolved()
    strategy = get_strategy(spec.strategy)
    if strategy.exports is None:
        takers = ", ".join(s.name for s in list_strategies() if s.exports)
        raise TransferlabError(
            f"strategy {spec.strategy!r} cannot produce a model file yet; fit takes {takers}"
        )
    data = data if data is not None else load_dataset(spec.dataset)
    kept = Fitted()
    result = strategy.fit_evaluate(spec, data, progress=progress, keep=kept)
    if not result.ok:
        raise TransferlabError(f"training failed, no model to save: {result.error}")
    result.code_version = code_version()  # set by strategies.run, which fit bypasses to keep the model
    task = kept.task
    class_names = list(task.class_names)
    spec_dict = spec.to_dict()
    if strategy.exports == "features":  # a frozen backbone's features and a head fitted on them
        head = kept.head
        backbone = create_backbone(spec.backbone, pretrained=True)
        dim = int(head.n_features_in_)
        if not get_head(spec.head).trains:  # sklearn's closed-form fit: the same linear map as a module
            head_module = _sklearn_head_module(head, dim, len(class_names))
        else:
            head_module = head.module_
        module = _FeaturesAndHead(backbone, head_module, spec.layer, spec.pool)
        kind, outputs = "features", "scores" if spec.head == "svm" else "probabilities"
        transform = backbone.transform(spec.input_size)
    else:
        module, kind, outputs = kept.model.cpu(), "network", "probabilities"
        transform = module.transform(spec.input_size)
    payload = _payload(spec_dict, data, class_names, kind, len(class_names), transform, outputs, result)
    return TrainedModel(module.cpu().eval(), payload), result


def load_model(path: str | os.PathLike) -> TrainedModel:
    """Read a model file written by ``TrainedModel.save`` / ``transferlab fit``. A file that is not one
    raises TransferlabError saying what it is instead."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(
            f"model file {str(path)!r} does not exist (write one with `transferlab fit ... -o FILE`)"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a torch file at all, truncated, or holding arbitrary Python objects
        why = (
            "it holds Python objects beyond tensors and plain values, which are never unpickled"
            if "weights_only" in str(exc).lower() or "weights only" in str(exc).lower()
            else f"unreadable as a torch file: {type(exc).__name__}"
        )
        raise TransferlabError(
            f"{str(path)!r} is not a transferlab model file ({why}); write one with "
            "`transferlab fit ... -o FILE`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        what = "a state_dict or other torch file" if isinstance(payload, dict) else type(payload).__name__
        raise TransferlabError(
            f"{str(path)!r} is not a transferlab model file (it holds {what}); write one with "
            "`transferlab fit ... -o FILE`"
        )
    if payload.get("format_version") != FORMAT_VERSION:
        raise TransferlabError(
            f"{str(path)!r} has model format version {payload.get('format_version')!r}; this "
            f"transferlab reads version {FORMAT_VERSION}"
        )
    _check_header(payload, path)
    state = payload.pop("state_dict")
    # Built on the meta device first (no memory): the file's tensors must match the module's shapes before
    # the real one is allocated, so a header's sizes can never make us allocate more than the file holds.
    with torch.device("meta"):
        _check_weights(_module_of(payload, state), state, payload["architecture"], path)
    module = _module_of(payload, state)
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:
        raise TransferlabError(
            f"{str(path)!r}: its weights do not fit a {payload['architecture']} ({str(exc)[:200]})"
        ) from None
    return TrainedModel(module, payload)


MAX_SIDE = 4096  # px: a model's image and preprocessing sizes beyond this are corrupt, not a real model
# Classes a model file may claim: ImageNet-21k has 21,841; beyond this the header is corrupt, and a head of
# that many outputs is never built from it (each class costs a row of weights).
MAX_CLASSES = 100_000


def _module_of(payload: dict, state: dict) -> nn.Module:
    """The untrained module a (checked) header describes."""
    spec, k = payload["provenance"]["spec"], payload["num_classes"]
    if payload["kind"] == "features":
        from transferlab.models.registry import create_backbone

        backbone = create_backbone(payload["architecture"], pretrained=False)
        dim = next(t for key, t in state.items() if _is_head_weight(key, t)).shape[1]
        return _FeaturesAndHead(backbone, _build_head(spec, dim, k), payload["layer"], payload["pool"])
    return _rebuild_network(spec, k)


def _is_head_weight(key: str, tensor: torch.Tensor) -> bool:
    return key.startswith("head.") and key.endswith("weight") and tensor.ndim == 2


def _check_weights(module: nn.Module, state: dict, architecture: str, path: Path) -> None:
    """Every tensor of ``module`` is in ``state`` with the same shape (compared, not allocated)."""
    for key, expected in module.state_dict().items():
        if key not in state:
            raise TransferlabError(
                f"{str(path)!r}: state_dict lacks {key!r}, which a {architecture} model needs "
                "(truncated or edited file?)"
            )
        if tuple(state[key].shape) != tuple(expected.shape):
            raise TransferlabError(
                f"{str(path)!r}: state_dict {key!r} has shape {tuple(state[key].shape)}, but the "
                f"header describes {tuple(expected.shape)} (num_classes or class_names edited?)"
            )


def _values_held(tensor: torch.Tensor) -> int:
    """How many values the file really holds behind ``tensor``: its shape alone proves nothing, since a
    1 KB file can hold a tensor of shape (10**9, 10**9) with zero strides over one number, or a meta tensor
    with no data at all. Anything but a plain CPU tensor holds 0. A model built to the shape of tensors that
    pass (numel <= values held) allocates no more than the file holds."""
    if tensor.layout is not torch.strided or tensor.device.type != "cpu" or tensor.is_quantized:
        return 0
    try:
        available = tensor.untyped_storage().nbytes() - tensor.storage_offset() * tensor.element_size()
    except (RuntimeError, NotImplementedError):
        return 0
    return max(available, 0) // tensor.element_size()


def _check_header(payload: dict, path: Path) -> None:
    """Every header field load_model reads, with its type and range, before anything is built: one error
    naming the file and the field instead of a KeyError, or a 1e10-class head allocated on trust."""

    def bad(field: str, why: str) -> TransferlabError:
        return TransferlabError(
            f"{str(path)!r}: model header field {field} {why} (a corrupt or edited file; "
            "write a new one with `transferlab fit ... -o FILE`)"
        )

    def whole(value, low: int, high: int) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high

    for field, kind in (
        ("architecture", str),
        ("kind", str),
        ("num_classes", int),
        ("class_names", list),
        ("state_dict", dict),
        ("preprocessing", dict),
        ("image", dict),
        ("outputs", str),
        ("provenance", dict),
    ):
        if field not in payload:
            raise bad(field, "is missing")
        if not isinstance(payload[field], kind) or isinstance(payload[field], bool):
            raise bad(field, f"is a {type(payload[field]).__name__}, not a {kind.__name__}")
    if payload["kind"] not in KINDS:
        raise bad("kind", f"= {payload['kind']!r} is unknown; valid: {', '.join(KINDS)}")
    if payload["outputs"] not in ("probabilities", "scores"):
        raise bad("outputs", f"= {payload['outputs']!r} is unknown; valid: probabilities, scores")
    names = payload["class_names"]
    if not names or not all(isinstance(n, str) for n in names):
        raise bad("class_names", "must be a non-empty list of strings")
    if not whole(payload["num_classes"], 1, MAX_CLASSES):
        why = f"= {payload['num_classes']} is out of range; valid: 1..{MAX_CLASSES:,} classes"
        raise bad("num_classes", why)
    if payload["num_classes"] != len(names):
        raise bad("num_classes", f"= {payload['num_classes']} does not match the {len(names)} class_names")
    image = payload["image"]
    for key in ("height", "width"):
        if not whole(image.get(key), 1, MAX_SIDE):
            raise bad(f"image.{key}", f"= {image.get(key)!r} is out of range; valid: 1..{MAX_SIDE} pixels")
    if image.get("channels") not in (1, 3):
        raise bad("image.channels", f"= {image.get('channels')!r} is invalid; valid: 1, 3")
    pre = payload["preprocessing"]
    for key in ("resize", "crop"):
        if not whole(pre.get(key), 1, MAX_SIDE):
            raise bad(f"preprocessing.{key}", f"= {pre.get(key)!r} is out of range; valid: 1..{MAX_SIDE} px")
    for key in ("mean", "std"):
        values = pre.get(key)
        if not (
            isinstance(values, list)
            and len(values) == 3
            and all(isinstance(v, (int, float)) and np.isfinite(v) for v in values)
        ):
            raise bad(f"preprocessing.{key}", f"= {values!r} must be 3 finite numbers")
    if not all(v > 0 for v in pre["std"]):
        raise bad("preprocessing.std", f"= {pre['std']!r} must be > 0")
    if not isinstance(pre.get("interpolation"), str):
        raise bad("preprocessing.interpolation", "is missing")
    state = payload["state_dict"]
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise bad("state_dict", "must map names to tensors")
    for key, tensor in state.items():
        held = _values_held(tensor)
        if held < tensor.numel():
            raise bad(
                "state_dict",
                f"{key!r} claims shape {tuple(tensor.shape)} ({tensor.numel():,} values) but the "
                f"file holds {held:,} values for it",
            )
    spec = payload["provenance"].get("spec")
    if not isinstance(spec, dict):
        raise bad("provenance.spec", "is missing (the resolved run spec the model is rebuilt from)")
    from transferlab.models.registry import get_backbone_entry
    from transferlab.runs import RunSpec

    try:
        get_backbone_entry(payload["architecture"])
    except TransferlabError as exc:
        raise bad("architecture", f"is invalid: {exc}") from None
    try:
        RunSpec.from_dict(spec)
    except (TransferlabError, TypeError) as exc:  # TypeError: a required field is missing
        raise bad("provenance.spec", f"is invalid: {exc}") from None
    if payload["kind"] == "features":
        if not any(_is_head_weight(k, v) for k, v in state.items()):
            raise bad("state_dict", "holds no head weights (head.*.weight), which a features model needs")
        if not isinstance(payload.get("pool"), str):
            raise bad("pool", f"= {payload.get('pool')!r} is not a pooling name")
        if not isinstance(payload.get("layer"), (str, int, type(None))):
            raise bad("layer", f"= {payload.get('layer')!r} is not a unit name or index")


# ------------------------------------------------------------------------------------ image files


def image_paths(inputs: list[str | os.PathLike]) -> list[Path]:
    """Image files named directly or found in folders (recursively, sorted); raises when none is found."""
    from transferlab.data.readers import IMAGE_EXTENSIONS

    found: list[Path] = []
    for item in map(Path, inputs):
        if item.is_dir():
            files = sorted(p for p in item.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not files:
                raise TransferlabError(
                    f"folder {str(item)!r} holds no images ({', '.join(IMAGE_EXTENSIONS)})"
                )
            found += files
        elif item.is_file():
            if item.suffix.lower() not in IMAGE_EXTENSIONS:
                raise TransferlabError(
                    f"{str(item)!r} is not an image file; valid: {', '.join(IMAGE_EXTENSIONS)}"
                )
            found.append(item)
        else:
            raise TransferlabError(
                f"input {str(item)!r} does not exist (give image files or folders of images)"
            )
    return found


def predict_files(model: TrainedModel, inputs: list[str | os.PathLike]) -> tuple[list[dict], list[str]]:
    """(one row per image: path, class, probability, every class's probability; the conversion notes)."""
    from transferlab.data.readers import decode_files

    files = image_paths(inputs)
    image = model.payload["image"]
    decoded = [array for array, _ in decode_files(files)]
    note = InputNote()
    arrays = []
    sizes = set()
    for array in decoded:  # one by one: files may differ in size and channels
        prepared, one = model.prepare(array[None])
        note.resized += one.resized
        note.to_grey += one.to_grey
        sizes.update(one.sizes)
        if prepared.shape[3] == 1 and image["channels"] == 3:
            prepared = prepared.expand(
                -1, -1, -1, 3
            )  # grey input, colour model: the transform repeats it anyway
        arrays.append(prepared)
    note.sizes = tuple(sorted(sizes))
    pixels = torch.cat(arrays)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TransferlabWarning)  # already converted; the notes say so once
        probs = model.predict_proba(pixels)
    rows = []
    for path, p in zip(files, probs, strict=True):
        best = int(p.argmax())
        rows.append(
            {
                "path": str(path),
                "class": str(model.classes_[best]),
                "probability": float(p[best]),
                "probabilities": {str(c): float(v) for c, v in zip(model.classes_, p, strict=True)},
            }
        )
    return rows, note.messages(image)


def best_spec(study_dir: str | os.PathLike) -> dict:
    """The resolved spec (a dict) of the configuration with the best validation accuracy at the largest
    training size of a finished study (its first task when it has several). Raises when none finished."""
    from transferlab.report.aggregate import best_by_validation, load_study
    from transferlab.study.export import open_study

    with open_study(study_dir) as store:
        study = load_study(store)
        specs = {run["run_id"]: run["spec"] for run in store.runs("done")}
    if study.n_usable == 0 or not study.tasks:
        raise TransferlabError(
            f"study {str(study_dir)!r} has no finished runs with a test accuracy: nothing to pick "
            "the best configuration from"
        )
    task = study.tasks[0]
    best = best_by_validation(task.at(task.sizes[-1]))
    if best is None:
        raise TransferlabError(
            f"study {str(study_dir)!r} recorded no validation accuracy at {task.sizes[-1].label}: "
            "the best configuration cannot be chosen without looking at test"
        )
    spec = dict(specs[best.run_ids[0]])
    spec.pop("seed", None)  # a fresh fit: the seed is the caller's (default 0), not one repeat's
    return spec
