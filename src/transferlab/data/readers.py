"""Readers for the on-disk formats the studies' datasets come in. Each returns an :class:`ImageSet`.

- MNIST-family IDX (``train-images-idx3-ubyte[.gz]`` ...), gz or raw;
- CIFAR-10 / CIFAR-100 python pickles (read with a restricted unpickler: only numpy arrays, no code);
- image folders ``root/<class>/*`` (optionally ``root/train/<class>``, ``root/test/<class>``);
- Tiny-ImageNet (``train/<wnid>/images``, ``val/val_annotations.txt``, ``wnids.txt``, ``words.txt``);
- ``.npz`` with arrays ``x`` (N,H,W[,C]) and ``y`` (N,) (optional ``class_names``, ``split``).

A corrupt or truncated file raises :class:`TransferlabError` naming the file.
"""

from __future__ import annotations

import gzip
import os
import pickle
import warnings
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError, TransferlabWarning

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")

# ---------------------------------------------------------------------------------------------- IDX

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                return f.read()
        return path.read_bytes()
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise TransferlabError(f"cannot read {path}: {exc} (corrupt or truncated file?)") from None


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (magic 0x0000TTDD: type TT, DD dimensions, big-endian int32 sizes) as an array."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise TransferlabError(f"{path} is not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise TransferlabError(f"{path}: truncated IDX header ({len(raw)} bytes, need {header})")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise TransferlabError(
            f"{path}: IDX header says shape {shape} ({expected} bytes of data) but the file holds "
            f"{len(raw) - header} (truncated or corrupt)"
        )
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def class_names_for(labels: np.ndarray, where: str) -> list[str]:
    """Names "0".."K-1" for integer ``labels``, refusing a label that cannot be a class index of this data:
    negative, or not below the number of images (one stray 2**40 would otherwise make 2**40 names)."""
    if len(labels) == 0:
        return []
    low, high = int(labels.min()), int(labels.max())
    if low < 0:
        raise TransferlabError(f"{where}: label {low} is negative; labels must be class indices 0..K-1")
    if high >= len(labels):
        raise TransferlabError(
            f"{where}: label {high} is not a class index of {len(labels)} images (labels must be 0..K-1 with K "
            f"at most the number of images, here <= {len(labels) - 1}); corrupt labels?"
        )
    return [str(i) for i in range(high + 1)]


def _find_one(directory: Path, patterns: Sequence[str], what: str) -> Path:
    for pattern in patterns:
        hits = sorted(directory.glob(pattern))
        if hits:
            return hits[0]
    raise TransferlabError(f"no {what} file in {directory} (looked for {', '.join(patterns)})")


def load_idx_dir(
    directory: str | os.PathLike, name: str = "idx", class_names: Sequence[str] | None = None
) -> ImageSet:
    """MNIST-family folder: train-/t10k- images (idx3) and labels (idx1), gzipped or raw."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TransferlabError(f"idx dataset folder {directory} does not exist")
    parts = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        img = read_idx(
            _find_one(directory, [f"{prefix}-images*idx3*", f"{prefix}*images*"], f"{prefix} images")
        )
        lab = read_idx(
            _find_one(directory, [f"{prefix}-labels*idx1*", f"{prefix}*labels*"], f"{prefix} labels")
        )
        if img.ndim != 3 or lab.ndim != 1 or len(img) != len(lab):
            raise TransferlabError(
                f"{directory}: {prefix} images {img.shape} and labels {lab.shape} do not pair up (N,H,W) with (N,)"
            )
        # Pixels are bytes everywhere else; casting floats in [0, 1] would silently make every image black.
        if img.dtype != np.uint8:
            raise TransferlabError(
                f"{directory}: {prefix} images hold {img.dtype.name} values; transferlab reads "
                "IDX images of unsigned bytes (type 0x08, pixels 0..255) only"
            )
        if not np.issubdtype(lab.dtype, np.integer):
            raise TransferlabError(
                f"{directory}: {prefix} labels hold {lab.dtype.name} values; give integer "
                "class indices (IDX type 0x08, 0x09, 0x0B or 0x0C)"
            )
        parts[split] = (img, lab.astype(np.int64))
    labels = np.concatenate([parts["train"][1], parts["test"][1]])
    if not len(labels):
        raise TransferlabError(f"idx dataset folder {directory} holds 0 images")
    names = (
        list(class_names) if class_names is not None else class_names_for(labels, f"idx dataset {directory}")
    )
    images = np.concatenate([parts["train"][0], parts["test"][0]])[..., None]
    split = np.array(["train"] * len(parts["train"][1]) + ["test"] * len(parts["test"][1]))
    return ImageSet(images, labels, names, split, name=name, source=str(directory))


# ------------------------------------------------------------------------------------------- CIFAR


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR pickles hold numpy arrays, lists and bytes; refuse anything else (a pickle can run code)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 store bytes this way
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays are allowed)")


def _unpickle(path: Path) -> dict:
    if not path.is_file():
        raise TransferlabError(f"missing CIFAR file {path}")
    try:
        with open(path, "rb") as f:
            obj = _NumpyOnlyUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        if "refusing" in str(exc):
            raise TransferlabError(f"{path}: {exc}; is this really a CIFAR file?") from None
        raise TransferlabError(
            f"cannot read CIFAR pickle {path}: {exc} (corrupt or truncated file?)"
        ) from None
    except Exception as exc:  # any other failure of an untrusted pickle is the file's fault too
        raise TransferlabError(
            f"cannot read CIFAR pickle {path}: {exc} (corrupt or truncated file?)"
        ) from None
    if not isinstance(obj, dict):
        raise TransferlabError(f"{path}: expected a dict in a CIFAR pickle, found {type(obj).__name__}")
    return {_text(k, path) if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _text(value: bytes, path: Path) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TransferlabError(f"{path}: {value[:40]!r} is not UTF-8 ({exc.reason}); corrupt file?") from None


def _cifar_part(path: Path, label_key: str) -> tuple[np.ndarray, np.ndarray]:
    d = _unpickle(path)
    if "data" not in d or label_key not in d:
        raise TransferlabError(f"{path}: CIFAR pickle lacks 'data' or '{label_key}' (keys: {sorted(d)})")
    data = np.asarray(d["data"], dtype=np.uint8)
    labels = np.asarray(d[label_key], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) != len(labels):
        raise TransferlabError(
            f"{path}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}"
        )
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def _names(meta: dict, key: str, path: Path) -> list[str]:
    if key not in meta:
        raise TransferlabError(f"{path}: meta file lacks '{key}' (keys: {sorted(meta)})")
    names = meta[key]
    if not isinstance(names, (list, tuple, np.ndarray)) or np.ndim(names) != 1:
        raise TransferlabError(
            f"{path}: '{key}' is a {type(names).__name__}, not a list of class names; corrupt file?"
        )
    return [_text(n, path) if isinstance(n, bytes) else str(n) for n in names]


def load_cifar(directory: str | os.PathLike, variant: int = 10, labels: str = "fine") -> ImageSet:
    """CIFAR-10 (``data_batch_1..5``, ``test_batch``, ``batches.meta``) or CIFAR-100 (``train``,
    ``test``, ``meta``; ``labels`` "fine" = 100 classes or "coarse" = 20 superclasses). ``directory``
    may be the batches folder itself or the folder that contains ``cifar-10-batches-py`` /
    ``cifar-100-python``."""
    directory = Path(directory)
    inner = directory / ("cifar-10-batches-py" if variant == 10 else "cifar-100-python")
    if inner.is_dir():
        directory = inner
    if not directory.is_dir():
        raise TransferlabError(f"cifar{variant} folder {directory} does not exist")
    if variant == 10:
        batches = sorted(directory.glob("data_batch_*"))
        if not batches:
            raise TransferlabError(f"no data_batch_* files in {directory} (the CIFAR-10 python version)")
        train = [_cifar_part(p, "labels") for p in batches]
        test = _cifar_part(directory / "test_batch", "labels")
        names = _names(_unpickle(directory / "batches.meta"), "label_names", directory / "batches.meta")
    elif variant == 100:
        if labels not in ("fine", "coarse"):
            raise TransferlabError(f"cifar100 labels={labels!r} is unknown; valid: fine, coarse")
        key = f"{labels}_labels"
        train = [_cifar_part(directory / "train", key)]
        test = _cifar_part(directory / "test", key)
        names = _names(_unpickle(directory / "meta"), f"{labels}_label_names", directory / "meta")
    else:
        raise TransferlabError(f"CIFAR variant {variant} is unknown; valid: 10, 100")
    images = np.concatenate([t[0] for t in train] + [test[0]])
    label_arr = np.concatenate([t[1] for t in train] + [test[1]])
    n_train = sum(len(t[1]) for t in train)
    split = np.array(["train"] * n_train + ["test"] * len(test[1]))
    return ImageSet(
        np.ascontiguousarray(images), label_arr, names, split, name=f"cifar{variant}", source=str(directory)
    )


# ------------------------------------------------------------------------------------ image files


def _decode(path: Path) -> tuple[np.ndarray, bool]:
    """One image file -> (uint8 HxWxC array with C in {1, 3}, is_grey). Alpha is dropped (as PIL's
    convert('RGB') and torchvision do), palette images are expanded, 16-bit images scaled to 8 bits."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                arr = np.asarray(img, dtype=np.float64)
                scale = 255.0 / 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 1.0
                return np.clip(np.rint(arr * scale), 0, 255).astype(np.uint8)[..., None], True
            if mode in ("1", "L", "LA"):
                return np.asarray(img.convert("L"), dtype=np.uint8)[..., None], True
            if mode == "P":
                rgb = img.convert("RGBA").convert("RGB")
                return np.asarray(rgb, dtype=np.uint8), False
            return np.asarray(img.convert("RGB"), dtype=np.uint8), False
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise TransferlabError(
            f"cannot decode image {path}: its header claims too many pixels ({exc}); a corrupt file or a "
            "decompression bomb? Remove it, or shrink it first"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise TransferlabError(
            f"cannot decode image {path}: {exc} (corrupt, truncated or not an image)"
        ) from None


def decode_files(paths: Sequence[Path]) -> list[tuple[np.ndarray, bool]]:
    """:func:`_decode` of each file, in parallel threads (PIL decodes with the GIL released). Pillow's
    "may be a decompression bomb" warning is an error here: decoding such a file would allocate gigabytes,
    and the warning alone would not say which file it was."""
    from PIL import Image

    workers = min(16, (os.cpu_count() or 1) * 2)
    # The filter is process-wide, so it is set once around the whole pool, not per thread.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=workers) as pool:
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        return list(pool.map(_decode, paths))


def _fit_square(arr: np.ndarray, size: int) -> np.ndarray:
    """Resize the shorter side to ``size`` and centre-crop to size x size (keeps the aspect ratio)."""
    from PIL import Image

    h, w = arr.shape[:2]
    if (h, w) == (size, size):
        return arr
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    img = Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr)
    img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    top, left = (nh - size) // 2, (nw - size) // 2
    out = np.asarray(img.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return out[..., None] if out.ndim == 2 else out


def decode_images(paths: Sequence[Path], size: int | None = None, what: str = "images") -> np.ndarray:
    """Decode files into one uint8 (N, H, W, C) array. C = 1 when every image is grey, else 3 (grey
    replicated). Mixed sizes need one: ``size`` (short side + centre crop); when None and sizes differ,
    the median short side (at most 256 px) is used with a warning."""
    decoded = decode_files(paths)
    if not decoded:
        raise TransferlabError(f"no images to decode for {what}")
    grey = all(g for _, g in decoded)
    arrays = [a if grey or a.shape[2] == 3 else np.repeat(a, 3, axis=2) for a, _ in decoded]
    shapes = Counter(a.shape[:2] for a in arrays)
    if size is None and len(shapes) > 1:
        size = int(min(256, np.median([min(s) for s in (a.shape[:2] for a in arrays)])))
        warnings.warn(
            f"{what}: images have {len(shapes)} different sizes; resizing each to {size}x{size} (shorter side "
            f"+ centre crop). Choose the size with ?size=N in the dataset URI.",
            TransferlabWarning,
            stacklevel=2,
        )
    if size is not None:
        arrays = [_fit_square(a, size) for a in arrays]
    return np.stack(arrays)


def _inside(path: Path, root: Path, what: str) -> Path:
    """``path`` itself, refused when it (or a symlink on the way) leads outside the dataset folder ``root``:
    a dataset reads its own files, never e.g. ``../../home`` named by an annotation or a link."""
    if not path.resolve().is_relative_to(root.resolve()):
        raise TransferlabError(
            f"{what} {path} leads outside the dataset folder {root} (to {path.resolve()}); a dataset may only "
            "read files inside its folder: copy the files in instead of linking to them"
        )
    return path


def _image_files(folder: Path, root: Path | None = None) -> list[Path]:
    files, skipped = [], []
    for p in sorted(folder.iterdir()):
        if root is not None:
            _inside(p, root, "file")
        if p.is_file():
            (files if p.suffix.lower() in IMAGE_EXTENSIONS else skipped).append(p)
    visible = [p.name for p in skipped if not p.name.startswith(".")]
    if visible:
        warnings.warn(
            f"{folder}: skipped {len(visible)} non-image file(s) ({', '.join(visible[:3])}"
            f"{', ...' if len(visible) > 3 else ''}); images are {', '.join(IMAGE_EXTENSIONS)}",
            TransferlabWarning,
            stacklevel=3,
        )
    return files


def _class_dirs(folder: Path, root: Path | None = None) -> list[Path]:
    dirs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [_inside(p, root, "folder") for p in dirs] if root is not None else dirs


MAX_SIZE = 4096  # px per side for ?size=N: 4096x4096x3 is 48 MB per image, beyond any backbone's input


def load_folder(root: str | os.PathLike, size: int | None = None) -> ImageSet:
    """``root/<class>/<image>`` (all "train"), or ``root/train/<class>/…`` + ``root/test/<class>/…``
    (official split kept). Class names are the folder names, sorted. Non-image files are skipped with a
    warning; an image that does not decode, or a class folder without images, is an error."""
    root = Path(root)
    if not root.is_dir():
        raise TransferlabError(f"image folder {root} does not exist")
    if size is not None and not 1 <= size <= MAX_SIZE:
        raise TransferlabError(
            f"folder:{root}?size={size} is out of range; give 1..{MAX_SIZE} pixels per side"
        )
    top = {p.name.lower(): p for p in _class_dirs(root, root)}
    if "train" in top and "test" in top:
        parts = {"train": top["train"], "test": top["test"]}
        class_names = sorted({p.name for part in parts.values() for p in _class_dirs(part, root)})
    else:
        parts = {"train": root}
        class_names = [p.name for p in _class_dirs(root, root)]
    if not class_names:
        raise TransferlabError(f"{root} has no class sub-folders (expected {root}/<class>/<image files>)")
    paths: list[Path] = []
    labels: list[int] = []
    split: list[str] = []
    for part, folder in parts.items():
        for label, cls in enumerate(class_names):
            cdir = folder / cls
            files = _image_files(cdir, root) if cdir.is_dir() else []
            if not files and (part == "train" or cdir.is_dir()):
                raise TransferlabError(f"class folder {cdir} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            paths += files
            labels += [label] * len(files)
            split += [part] * len(files)
    images = decode_images(paths, size, what=str(root))
    return ImageSet(
        images, np.array(labels), class_names, np.array(split), name=f"folder:{root.name}", source=str(root)
    )


def _plain_name(name: str) -> bool:
    """One file or folder name: no separators, not '.', '..' or empty."""
    return (
        bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name and "\0" not in name
    )


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise TransferlabError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise TransferlabError(f"cannot read {path}: {exc.strerror or exc}") from None


def load_tiny_imagenet(directory: str | os.PathLike) -> ImageSet:
    """Tiny-ImageNet-200: ``wnids.txt`` fixes the class order, ``words.txt`` gives names (first synonym),
    ``train/<wnid>/images/*.JPEG`` is "train". The official test labels are withheld, so the labelled
    ``val`` images (``val/val_annotations.txt``) are marked "test"; validation is carved from train."""
    root = Path(directory)
    inner = root / "tiny-imagenet-200"
    if inner.is_dir():
        root = inner
    wnids_file = root / "wnids.txt"
    if not wnids_file.is_file():
        raise TransferlabError(f"{wnids_file} is missing: {root} is not a Tiny-ImageNet folder")
    wnids = [w.strip() for w in _read_text(wnids_file).split() if w.strip()]
    for wnid in wnids:  # a wnid names a folder under train/: one plain name, never a path
        if not _plain_name(wnid):
            raise TransferlabError(
                f"{wnids_file}: class {wnid!r} is not a plain folder name (like n01443537)"
            )
    words = {}
    if (root / "words.txt").is_file():
        for line in (root / "words.txt").read_text(errors="replace").splitlines():
            if "\t" in line:
                wnid, names = line.split("\t", 1)
                words[wnid] = names.split(",")[0].strip()
    index = {w: i for i, w in enumerate(wnids)}
    paths: list[Path] = []
    labels: list[int] = []
    split: list[str] = []
    for wnid in wnids:
        folder = root / "train" / wnid / "images"
        files = _image_files(folder, root) if folder.is_dir() else []
        if not files:
            raise TransferlabError(f"{folder} holds no training images for class {wnid}")
        paths += files
        labels += [index[wnid]] * len(files)
        split += ["train"] * len(files)
    ann = root / "val" / "val_annotations.txt"
    if ann.is_file():
        for n, line in enumerate(_read_text(ann).splitlines(), 1):
            fields = line.split("\t")
            if len(fields) < 2:
                continue
            if fields[1] not in index:
                raise TransferlabError(f"{ann} line {n}: class {fields[1]!r} is not in wnids.txt")
            if not _plain_name(fields[0]):
                raise TransferlabError(
                    f"{ann} line {n}: image {fields[0]!r} is not a plain file name in val/images "
                    "(no folders, '..' or absolute paths)"
                )
            paths.append(_inside(root / "val" / "images" / fields[0], root, "image"))
            labels.append(index[fields[1]])
            split.append("test")
    names = [words.get(w, w) for w in wnids]
    images = decode_images(paths, size=None, what=str(root))
    return ImageSet(images, np.array(labels), names, np.array(split), name="tiny-imagenet", source=str(root))


def load_npz(path: str | os.PathLike) -> ImageSet:
    """``x`` uint8 (N,H,W) or (N,H,W,C) with C in {1,3}; ``y`` int (N,); optional ``class_names`` and
    ``split`` ("train"/"test" per image; default all "train")."""
    path = Path(path)
    if not path.is_file():
        raise TransferlabError(f"npz file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as exc:
        raise TransferlabError(f"cannot read npz file {path}: {exc} (corrupt or truncated?)") from None
    if "x" not in arrays or "y" not in arrays:
        raise TransferlabError(
            f"{path} must hold arrays 'x' (images) and 'y' (labels); it holds {sorted(arrays)}"
        )
    x, y = arrays["x"], arrays["y"]
    if x.dtype != np.uint8:
        raise TransferlabError(
            f"{path}: x must be uint8 pixels 0..255, got {x.dtype} (scale and cast it first)"
        )
    if x.ndim == 3:
        x = x[..., None]
    if not np.issubdtype(y.dtype, np.integer):
        raise TransferlabError(f"{path}: y must hold integer class indices, got {y.dtype}")
    if x.ndim == 0 or len(x) == 0:
        raise TransferlabError(
            f"{path}: x holds 0 images (shape {x.shape}); a dataset needs at least one per class"
        )
    names = (
        [str(n) for n in arrays["class_names"]] if "class_names" in arrays else class_names_for(y, str(path))
    )
    split = arrays["split"].astype(str) if "split" in arrays else np.array(["train"] * len(y))
    return ImageSet(x, y, names, split, name=f"npz:{path.stem}", source=str(path))
