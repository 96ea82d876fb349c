"""transferlab: how much does transfer learning buy you, with which backbone, frozen how deep, and how
does that change as you get more labels?

Public surface (see DESIGN.md): :func:`load_dataset`, :class:`ImageSet`, (from the backbone layer)
``create_backbone``, and ``load_model`` for a model file written by ``transferlab fit``. The notebook
API (transferlab/api.py): ``run``, ``study``, ``fit``, ``load_study(dir).to_pandas()``; the sklearn
estimator ``TransferClassifier``; ``export_onnx`` for a fitted model.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from transferlab.data.datasets import ImageSet, list_datasets, load_dataset
from transferlab.errors import TransferlabError, TransferlabWarning

try:
    __version__ = version("transferlab")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0+local"

__all__ = [
    "ImageSet",
    "TransferlabError",
    "TransferlabWarning",
    "create_backbone",
    "list_backbones",
    "list_datasets",
    "load_dataset",
    "load_model",
    "__version__",
    "run",
    "study",
    "fit",
    "load_study",
    "Study",
    "TransferClassifier",
    "export_onnx",
]

_LAZY = {
    "create_backbone": "transferlab.models.registry",
    "list_backbones": "transferlab.models.registry",
    "load_model": "transferlab.model",
}
_LAZY.update(
    {
        "run": "transferlab.api",
        "fit": "transferlab.api",
        "load_study": "transferlab.api",
        "Study": "transferlab.api",
        "TransferClassifier": "transferlab.estimator",
        "export_onnx": "transferlab.onnx_export",
    }
)


def __getattr__(name: str):
    # The backbone layer imports torch (a second or more); loading it on first use keeps
    # `import transferlab` and data-only CLI commands fast.
    if name == "study":  # the subpackage, callable as the API's study() (see transferlab/study/__init__.py)
        import importlib

        return importlib.import_module("transferlab.study")
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'transferlab' has no attribute {name!r}")
