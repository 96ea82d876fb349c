"""Deterministic preprocessing: uint8 NHWC images -> the float NCHW tensor a backbone's weights expect.

One :class:`ImageTransform` per weight spec (resize, centre crop, mean/std, interpolation), so callers
never retype preprocessing. ``key()`` names every setting; the feature cache keys on it. Augmentation
(random crops, mirrors, noise) lives in ``data/augment.py`` and runs before this on training batches.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from transferlab.errors import TransferlabError

INTERPOLATIONS = ("bilinear", "bicubic", "nearest")


def as_uint8_nhwc(images: np.ndarray | torch.Tensor, what: str = "images") -> torch.Tensor:
    """Validate and wrap ``images`` (uint8 (N, H, W, C), C in {1, 3}) as a CPU/GPU uint8 tensor, no copy."""
    if not isinstance(images, (np.ndarray, torch.Tensor)):
        raise TransferlabError(f"{what} must be a numpy array or torch tensor, got {type(images).__name__}")
    dtype = images.dtype
    if dtype not in (np.uint8, torch.uint8):
        raise TransferlabError(
            f"{what} must be uint8 pixels 0..255 in (N, H, W, C) layout, got dtype {dtype}; "
            "convert with (x * 255).round().astype(np.uint8) if they are floats in 0..1"
        )
    shape = tuple(images.shape)
    if len(shape) != 4 or shape[-1] not in (1, 3) or min(shape[1:3], default=0) < 1:
        hint = " (one image? add a batch axis: images[None])" if len(shape) == 3 else ""
        raise TransferlabError(
            f"{what} must have shape (N, H, W, C) with C in 1 or 3 and H, W >= 1, got {shape}{hint}"
        )
    if isinstance(images, np.ndarray):
        # ImageSet pixels are read-only and torch warns about that; nothing writes through this view.
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            images = torch.from_numpy(np.ascontiguousarray(images))
    return images


def to_float_nchw(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    return images.permute(0, 3, 1, 2).float().div_(255.0)


def resize(x: torch.Tensor, size: int, interpolation: str = "bilinear") -> torch.Tensor:
    """Resize float (N, C, H, W) to (N, C, size, size); antialiased when shrinking, clamped to [0, 1]."""
    if x.shape[-2:] == (size, size):
        return x
    if interpolation == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    # bicubic overshoots; clamp so the result matches what a uint8 image library would produce.
    out = F.interpolate(x, size=(size, size), mode=interpolation, align_corners=False, antialias=True)
    return out.clamp_(0.0, 1.0)


def center_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """Central (size, size) window of (N, C, H, W); H, W >= size."""
    h, w = x.shape[-2:]
    top, left = (h - size) // 2, (w - size) // 2
    return x[..., top : top + size, left : left + size]


def grey_to_rgb(x: torch.Tensor) -> torch.Tensor:
    """(N, 1, H, W) -> (N, 3, H, W) by repeating the channel; 3-channel input is returned unchanged."""
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def normalize(x: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """(x - mean) / std per channel, on (N, 3, H, W)."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


@dataclass(frozen=True)
class ImageTransform:
    """uint8 (N, H, W, C) -> float32 (N, 3, crop, crop): resize to ``resize`` x ``resize`` (aspect not kept:
    small datasets are square and photos keep all their content), centre-crop ``crop``, grey->RGB, then
    normalise with the weights' mean/std (pixels scaled to [0, 1] first)."""

    resize: int
    crop: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"

    def __post_init__(self) -> None:
        if self.interpolation not in INTERPOLATIONS:
            raise TransferlabError(
                f"interpolation {self.interpolation!r} is unknown; valid: {', '.join(INTERPOLATIONS)}"
            )
        if not 1 <= self.crop <= self.resize:
            raise TransferlabError(f"crop {self.crop} must be between 1 and the resize side {self.resize}")

    def with_size(self, size: int) -> ImageTransform:
        """The same normalisation at another input side (``size`` x ``size``, no crop)."""
        if not isinstance(size, int) or size < 1:
            raise TransferlabError(f"input size must be a positive number of pixels, got {size!r}")
        return ImageTransform(size, size, self.mean, self.std, self.interpolation)

    def key(self) -> str:
        """Every setting, as a stable string (part of feature-cache keys)."""
        mean = ",".join(f"{v:.6g}" for v in self.mean)
        std = ",".join(f"{v:.6g}" for v in self.std)
        return f"resize={self.resize};crop={self.crop};{self.interpolation};mean={mean};std={std};rgb"

    def __call__(
        self, images: np.ndarray | torch.Tensor, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """Preprocess a batch; ``device`` moves the uint8 pixels first (4x less traffic than floats)."""
        pixels = as_uint8_nhwc(images)
        if device is not None:
            pixels = pixels.to(device, non_blocking=True)
        x = to_float_nchw(pixels)
        x = center_crop(resize(x, self.resize, self.interpolation), self.crop)
        # Repeat grey after resizing: a third of the interpolation work. contiguous() so convolutions
        # see a dense tensor (expand and crop give strided views).
        return normalize(grey_to_rgb(x), self.mean, self.std).contiguous()
