"""transferlab: how much does transfer learning buy you, with which backbone, frozen how deep, and how
does that change as you get more labels?

Public surface (see DESIGN.md): :func:`load_dataset`, :class:`ImageSet`, and (from the backbone layer)
``create_backbone``.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from transferlab.data.datasets import ImageSet, list_datasets, load_dataset
from transferlab.errors import TransferlabError, TransferlabWarning

try:
    __version__ = version("transferlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = ["ImageSet", "TransferlabError", "TransferlabWarning", "list_datasets", "load_dataset", "__version__"]
