"""Where transferlab keeps files: datasets it installs and caches it computes.

Both directories are user-writable so that nothing needs root: ``$TRANSFERLAB_DATA`` (default
``~/.cache/transferlab/data``) and ``$TRANSFERLAB_CACHE`` (default ``~/.cache/transferlab/cache``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from transferlab import faults
from transferlab.errors import TransferlabError


def _base() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "transferlab"


def data_dir() -> Path:
    """Directory for installed datasets (not created here)."""
    env = os.environ.get("TRANSFERLAB_DATA")
    return Path(env).expanduser() if env else _base() / "data"


def cache_dir() -> Path:
    """Directory for content-keyed caches (features, source models; not created here)."""
    env = os.environ.get("TRANSFERLAB_CACHE")
    return Path(env).expanduser() if env else _base() / "cache"


def crash_dir() -> Path:
    """Where the CLI saves the traceback of an unexpected error (``~/.cache/transferlab``; not created here)."""
    return _base()


@contextlib.contextmanager
def exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an inter-process lock (``flock`` on ``lock_path``) for the block.

    Shared artefacts (cached features, trained source models) are computed inside it after re-checking
    the cache, so parallel workers of a study compute each one once and the others wait and read it.
    The lock dies with its process: a SIGKILLed holder never blocks the next run.
    """
    import fcntl

    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def atomic_write(path: Path, write: Callable) -> None:
    """``write(binary file object)`` into a temp file beside ``path``, fsync, then rename over it: a reader
    (or a process killed mid-write) never sees a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        faults.checkpoint("atomic-write")
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def check_output_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """``path`` as a Path, if a file can be written there (by :func:`atomic_write`, which creates missing
    folders); else TransferlabError. Checked before hours of work whose result would go there."""
    path = Path(path)
    if path.is_dir():
        raise TransferlabError(
            f"{what} {str(path)!r} is a directory; give a file name, e.g. {str(path / 'out')!r}"
        )
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise TransferlabError(
            f"cannot write {what} {str(path)!r}: {str(ancestor)!r} is a file, not a folder"
        )
    try:
        tempfile.TemporaryFile(dir=ancestor).close()
    except OSError as exc:
        raise TransferlabError(
            f"cannot write {what} {str(path)!r}: folder {str(ancestor)!r}: {exc.strerror}"
        ) from None
    return path
