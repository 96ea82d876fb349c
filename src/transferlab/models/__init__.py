"""Backbones: one interface (:class:`Backbone`) over the studies' CNNs, torchvision and timm models.

Importing this package registers every builder (small CNNs, torchvision architectures, EfficientNet-Lite).
"""

from transferlab.models import efficientnet, small_cnns, torchvision_models  # noqa: F401  (register backbones)
from transferlab.models.backbone import Backbone, WeightSpec
from transferlab.models.registry import create_backbone, get_backbone_entry, list_backbones, register_backbone

__all__ = [
    "Backbone",
    "WeightSpec",
    "create_backbone",
    "get_backbone_entry",
    "list_backbones",
    "register_backbone",
]
