"""Which code produced a result: :func:`code_version` is the release plus a hash of the package's
source files, e.g. ``0.1.0+src.1a2b3c4d``.

The release alone (``transferlab.__version__``, from the installed metadata) stays the same through
every change between releases, so it cannot tell two results' code apart; the hash can. It is recorded
with results (``RunResult.code_version``, the study store, model files) but keys no cache: a comment edit
would invalidate every cached feature and source model. Caches are keyed by explicit format numbers
instead (``features.FEATURES_FORMAT``, ``strategies.snt.SOURCE_MODEL_FORMAT``), bumped by hand when the
numerics behind them change.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def source_hash(root: Path = PACKAGE_DIR) -> str:
    """sha256 (hex) of the ``.py`` files under ``root``: each one's relative path and bytes, in path order."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py"), key=lambda p: p.relative_to(root).as_posix()):
        data = path.read_bytes()
        # Path and length before the bytes: moving text from one file to the next changes the hash.
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


@functools.cache
def code_version() -> str:
    """``<release>+src.<8 hex digits of source_hash()>``, computed once per process (~80 small files)."""
    from transferlab import __version__

    # PEP 440: a local segment is joined with "." when the release already has one (e.g. 0.0.0+local).
    return f"{__version__}{'.' if '+' in __version__ else '+'}src.{source_hash()[:8]}"
