"""Training-time augmentation as batched, seeded torch ops on float NCHW batches.

The studies' data-augmentation baseline: horizontal mirror and Gaussian noise (the CIFAR-domains study),
plus random crop with zero padding and a small random affine (rotation, translation, scale). Every op
draws one independent random choice per image from the ``torch.Generator`` it is given, so a run's
augmentation is reproducible from its seed. Ops apply to already-normalised inputs: padding and
out-of-frame pixels are 0 (the per-channel mean), and the noise standard deviation is in units of the
normalised input (about one standard deviation of a pixel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from transferlab.errors import TransferlabError
from transferlab.settings import AUGMENTATIONS, DEFAULT_AUGMENT, parse_augment  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class Augmenter:
    """Random per-image augmentation of a float batch (N, C, H, W); returns a new tensor, same shape.

    mirror: flip left-right with probability 1/2. noise_std: add N(0, noise_std^2) per pixel (normalised
    units; 0 = off). crop_padding: pad by this many pixels (zeros) and crop back at a random offset
    (0 = off). rotation: max degrees of a random rotation; translation: max shift as a fraction of the
    side; scale: max relative zoom (e.g. 0.1 = 0.9..1.1) — all three 0 = no affine.
    """

    mirror: bool = False
    noise_std: float = 0.0
    crop_padding: int = 0
    rotation: float = 0.0
    translation: float = 0.0
    scale: float = 0.0

    @classmethod
    def from_names(cls, names: tuple[str, ...], image_size: int) -> Augmenter:
        """The studies' settings for the named ops: mirror; noise std 0.1; crop with padding = 1/8 of the
        side (4 px at 32 px); affine up to 10 degrees, 10% shift, 10% zoom."""
        return cls(
            mirror="mirror" in names,
            noise_std=0.1 if "noise" in names else 0.0,
            crop_padding=max(1, round(image_size / 8)) if "crop" in names else 0,
            rotation=10.0 if "affine" in names else 0.0,
            translation=0.1 if "affine" in names else 0.0,
            scale=0.1 if "affine" in names else 0.0,
        )

    @property
    def active(self) -> bool:
        return self.mirror or self.noise_std > 0 or self.crop_padding > 0 or self._affine

    @property
    def _affine(self) -> bool:
        return self.rotation > 0 or self.translation > 0 or self.scale > 0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if x.ndim != 4 or not x.is_floating_point():
            raise TransferlabError(
                f"augmentation needs a float batch (N, C, H, W), got {x.dtype} {tuple(x.shape)}"
            )
        if self.mirror:
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None].to(x.device), x.flip(-1), x)
        if self.crop_padding > 0:
            x = random_crop(x, self.crop_padding, generator)
        if self._affine:
            x = random_affine(x, self.rotation, self.translation, self.scale, generator)
        if self.noise_std > 0:
            x = x + self.noise_std * torch.randn(x.shape, generator=generator).to(x.device, x.dtype)
        return x


def random_crop(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad (N, C, H, W) by ``padding`` px on every side and cut an H x W window at a random offset
    per image (each offset uniform in 0..2*padding)."""
    n, _, h, w = x.shape
    padded = F.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h)).to(x.device)  # (N, H)
    cols = (dx[:, None] + torch.arange(w)).to(x.device)  # (N, W)
    batch = torch.arange(n, device=x.device)[:, None, None]
    # Advanced indexing on dims 0, 2, 3 moves the channel dim last: (N, H, W, C) -> back to NCHW.
    return (
        padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2).contiguous()
    )


def random_affine(
    x: torch.Tensor, rotation: float, translation: float, scale: float, generator: torch.Generator
) -> torch.Tensor:
    """Per-image rotation in [-rotation, rotation] degrees, shift in [-translation, translation] of the
    side, zoom in [1 - scale, 1 + scale]; bilinear resampling, zeros outside the frame."""
    n = len(x)

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * limit

    angle = uniform(math.radians(rotation))
    zoom = 1 + uniform(scale)
    shift_x, shift_y = (
        uniform(2 * translation),
        uniform(2 * translation),
    )  # affine_grid spans [-1, 1] = 2 units
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, shift_x], 1), torch.stack([sin, cos, shift_y], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
