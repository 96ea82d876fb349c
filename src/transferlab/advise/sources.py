"""Candidate sources for advice: what a target could transfer from, named as one string each.

- ``NAME``: a registry backbone with pretrained weights (e.g. ``efficientnet_lite0.in1k``, ImageNet);
- ``NAME@random``: the same architecture from random init (the no-transfer reference; seeded);
- ``NAME@source``: NAME trained on the dataset's *other* classes (the source side of the class split);
  the model is the snt strategy's, stored by content key, so advice and snt runs share it;
- ``NAME@DATASET``: NAME trained on every class of another dataset (e.g. ``cifar_cnn@mnist``).

Each resolves to a :class:`Source`: a Backbone (features + its classifier's probabilities for LEEP/NCE)
and, where there is one, a sample of the images it learned from (for the similarity measures). ImageNet
is not on this machine, so pretrained ImageNet backbones are compared against :func:`photo_reference`,
random crops of scikit-image's bundled photographs: a small stand-in, said so in every output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError
from transferlab.models.backbone import Backbone

KINDS = ("pretrained", "random", "source", "dataset")
SOURCE_SAMPLE = 500  # source images kept for the similarity measures
PHOTO_NAMES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "camera",
    "hubble_deep_field",
    "grass",
    "gravel",
    "brick",
    "cell",
    "moon",
    "page",
)
PHOTO_CROPS = 24  # random square crops per photo


@dataclass(frozen=True)
class SourceSettings:
    """Input sides and how ``@source`` / ``@DATASET`` models are trained (by the snt strategy's source
    model code): epochs, fraction of the source's training pool, learning rate, seed. ``input_size``:
    side in pixels for pretrained backbones (None: each one's own, e.g. 224); ``trained_input_size``: for
    @random/@source/@DATASET models (None: the architecture's own, e.g. cifar_cnn's 32)."""

    epochs: int = 5
    size: float = 0.2
    lr: float = 1e-3
    input_size: int | None = None
    seed: int = 0
    run_spec: dict | None = None  # a study's snt spec: its source model exactly (every training setting)
    trained_input_size: int | None = None

    def side(self, kind: str) -> int | None:
        """The input side for a candidate of ``kind``."""
        return self.input_size if kind == "pretrained" else self.trained_input_size


@dataclass
class Source:
    """A resolved candidate: its name, kind, backbone, reference images (uint8 NHWC or None) and notes."""

    name: str
    kind: str
    backbone: Backbone
    reference: ImageSet | None = None
    reference_note: str = ""
    record: dict = field(default_factory=dict)  # source-model training record (accuracy, cached, ...)

    @property
    def architecture(self) -> str:
        return self.name.split("@")[0]


WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors", ".ckpt")


def parse_candidate(text: str) -> tuple[str, str, str | None]:
    """'cifar_cnn@mnist' -> (architecture, kind, dataset or None); checks the architecture name.
    'NAME@/path/w.pth' (a weights file) is a pretrained candidate named so."""
    from transferlab.models.registry import get_backbone_entry

    name, _, where = text.strip().partition("@")
    entry = get_backbone_entry(name)  # unknown -> error listing the registry
    if not where:
        if not entry.pretrained:
            raise TransferlabError(
                f"candidate {text!r}: {name} has no pretrained weights; name how to get them: {name}@random, "
                f"{name}@source (trained on the other classes) or {name}@DATASET (trained on another dataset)"
            )
        return name, "pretrained", None
    if where in ("random", "source"):
        return name, where, None
    if where.lower().endswith(WEIGHT_SUFFIXES):  # NAME@PATH: a weights file, as weights = PATH in a run
        get_backbone_entry(text.strip()).find_weights()  # a missing file -> the error naming it
        return text.strip(), "pretrained", None
    return name, "dataset", where


def photo_reference(side: int = 64, seed: int = 0) -> ImageSet:
    """Random square crops (``PHOTO_CROPS`` per photo, 20-80 % of the short side, resized to ``side``) of
    scikit-image's bundled photographs, as uint8 RGB: a stand-in sample of natural (ImageNet-like) images."""
    import warnings

    import torch
    import torch.nn.functional as F

    try:
        from skimage import data as skdata
    except ImportError:  # a dependency of transferlab; missing only from a broken or partial install
        raise TransferlabError(
            "the ImageNet stand-in needs scikit-image, a dependency of transferlab that is not installed: "
            "pip install 'scikit-image>=0.22'"
        ) from None
    rng = np.random.default_rng(seed)
    crops = []
    for name in PHOTO_NAMES:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                photo = np.asarray(getattr(skdata, name)())
        except Exception:  # a photo that would need a download (offline) is simply not used
            continue
        if photo.dtype != np.uint8 or photo.ndim not in (2, 3):
            continue
        photo = np.repeat(photo[..., None], 3, 2) if photo.ndim == 2 else photo[..., :3]
        h, w = photo.shape[:2]
        for _ in range(PHOTO_CROPS):
            edge = int(min(h, w) * rng.uniform(0.2, 0.8))
            top, left = rng.integers(0, h - edge + 1), rng.integers(0, w - edge + 1)
            crop = torch.from_numpy(np.ascontiguousarray(photo[top : top + edge, left : left + edge]))
            x = crop.permute(2, 0, 1)[None].float()
            x = F.interpolate(x, size=(side, side), mode="bilinear", antialias=True, align_corners=False)
            crops.append(x[0].permute(1, 2, 0).round().clamp(0, 255).to(torch.uint8).numpy())
    if not crops:
        raise TransferlabError("no scikit-image sample photo could be loaded for the ImageNet stand-in")
    images = np.stack(crops)
    return ImageSet(
        images,
        np.zeros(len(images), np.int64),
        ["photo"],
        np.array(["train"] * len(images)),
        name="skimage-photos",
        source="scikit-image sample photographs (random crops)",
    )


def _sample(image_set: ImageSet, indices: np.ndarray, seed: int) -> ImageSet:
    """An ImageSet of at most SOURCE_SAMPLE of ``indices``' images (labels kept)."""
    rng = np.random.default_rng(seed)
    chosen = np.sort(indices[rng.permutation(len(indices))[:SOURCE_SAMPLE]])
    return ImageSet(
        image_set.images[chosen],
        image_set.labels[chosen],
        image_set.class_names,
        np.array(["train"] * len(chosen)),
        name=f"{image_set.name}-sample",
    )


def _trained_source(
    architecture: str, data: ImageSet, classes: tuple[int, ...], settings: SourceSettings, progress: bool
) -> tuple[Backbone, dict]:
    """The snt strategy's source model for ``classes`` of ``data`` (from its cache, or trained now)."""
    from transferlab.runs import RunSpec
    from transferlab.strategies.base import resolve_device
    from transferlab.strategies.snt import source_model

    if settings.run_spec is not None:
        spec = RunSpec.from_dict({**settings.run_spec, "seed": settings.seed}).resolved()
    else:
        spec = RunSpec(
            strategy="snt",
            dataset=data.name,
            backbone=architecture,
            transfer=1,
            lr=settings.lr,
            source_size=settings.size,
            source_epochs=settings.epochs,
            epochs=settings.epochs,
            input_size=settings.trained_input_size,
            seed=settings.seed,
        ).resolved()
    return source_model(spec, data, classes, resolve_device("cpu"), progress)


def resolve_source(
    text: str,
    data: ImageSet,
    source_classes: tuple[int, ...] | None,
    settings: SourceSettings,
    progress: bool = False,
) -> Source:
    """Build candidate ``text`` for a target drawn from ``data`` (``source_classes``: the other side of the
    class split, needed by ``@source``)."""
    from transferlab.data.datasets import load_dataset
    from transferlab.models.registry import create_backbone
    from transferlab.train import seeded

    architecture, kind, dataset = parse_candidate(text)
    if kind == "pretrained":
        backbone = create_backbone(architecture, pretrained=True)
        photos = photo_reference(settings.input_size or backbone.spec.input_size)
        note = f"{len(photos)} crops of scikit-image's sample photos, a stand-in for ImageNet (not on this machine)"
        return Source(text, kind, backbone, photos, note)
    if kind == "random":
        with seeded(settings.seed):
            backbone = create_backbone(architecture, pretrained=False)
        return Source(text, kind, backbone, None, "random init: no source images")
    if kind == "source":
        if source_classes is None:
            raise TransferlabError(
                f"candidate {text!r} learns the dataset's other classes, so the target must be a subset: give "
                "--target (or --source) classes"
            )
        backbone, record = _trained_source(architecture, data, source_classes, settings, progress)
        pool = np.flatnonzero(np.isin(data.labels, source_classes) & (data.split == "train"))
        names = ", ".join(data.class_names[c] for c in source_classes)
        return Source(
            text,
            kind,
            backbone.cpu(),
            _sample(data, pool, settings.seed),
            f"{data.name} classes {names}",
            record,
        )
    try:
        other = load_dataset(dataset)
    except TransferlabError as exc:
        raise TransferlabError(
            f"candidate {text!r}: {exc} (after '@': random, source or a dataset)"
        ) from None
    backbone, record = _trained_source(
        architecture, other, tuple(range(other.num_classes)), settings, progress
    )
    return Source(
        text,
        kind,
        backbone.cpu(),
        _sample(other, other.indices("train"), settings.seed),
        f"{other.name}, all {other.num_classes} classes",
        record,
    )


def default_candidates() -> list[str]:
    """Every pretrained backbone whose weights are on this machine, then ``cifar_cnn@random``."""
    from transferlab.models.registry import get_backbone_entry, list_backbones

    present = [name for name in list_backbones(pretrained=True) if get_backbone_entry(name).weights_present()]
    return [*present, "cifar_cnn@random"]
