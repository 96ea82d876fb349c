"""Where transferlab keeps files: datasets it installs and caches it computes.

Both directories are user-writable so that nothing needs root: ``$TRANSFERLAB_DATA`` (default
``~/.cache/transferlab/data``) and ``$TRANSFERLAB_CACHE`` (default ``~/.cache/transferlab/cache``).
"""

from __future__ import annotations

import os
from pathlib import Path


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
