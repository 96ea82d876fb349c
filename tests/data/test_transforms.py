"""Deterministic preprocessing: resize, centre crop, grey->RGB, normalisation, and a stable key."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from transferlab import TransferlabError
from transferlab.data.transforms import ImageTransform, center_crop, resize


def test_resize_then_crop_then_normalise():
    transform = ImageTransform(8, 6, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
    images = np.zeros((2, 4, 4, 3), np.uint8)
    images[..., 0] = 255  # red
    x = transform(images)
    assert x.shape == (2, 3, 6, 6) and x.dtype == torch.float32 and x.is_contiguous()
    assert torch.allclose(x[:, 0], torch.ones(2, 6, 6)) and torch.allclose(x[:, 1:], -torch.ones(2, 2, 6, 6))


def test_centre_crop_takes_the_middle():
    x = torch.arange(36.0).view(1, 1, 6, 6)
    assert center_crop(x, 2).flatten().tolist() == [14.0, 15.0, 20.0, 21.0]


def test_bicubic_resize_stays_in_range_and_same_size_is_untouched():
    x = torch.zeros(1, 1, 8, 8)
    x[..., ::2, :] = 1.0  # stripes make bicubic overshoot
    out = resize(x, 13, "bicubic")
    assert out.min() >= 0 and out.max() <= 1
    assert resize(x, 8) is x


def test_grey_becomes_three_equal_channels():
    grey = np.random.default_rng(0).integers(0, 256, (1, 5, 5, 1), dtype=np.uint8)
    x = ImageTransform(5, 5, (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))(grey)
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    assert torch.allclose(x[0, 0], torch.from_numpy(grey[0, ..., 0]).float() / 255)


def test_read_only_arrays_are_accepted_without_copy_warnings():
    images = np.zeros((1, 4, 4, 1), np.uint8)
    images.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ImageTransform(4, 4, (0.5,) * 3, (0.5,) * 3)(images)


def test_key_names_every_setting():
    a = ImageTransform(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert a.key() == "resize=256;crop=224;bilinear;mean=0.485,0.456,0.406;std=0.229,0.224,0.225;rgb"
    assert a.with_size(64).key().startswith("resize=64;crop=64;")
    assert a.key() != ImageTransform(256, 224, a.mean, a.std, "bicubic").key()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"interpolation": "lanczos"},
            "interpolation 'lanczos' is unknown; valid: bilinear, bicubic, nearest",
        ),
        ({"crop": 300}, "crop 300 must be between 1 and the resize side 256"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    settings = {"resize": 256, "crop": 224, "mean": (0.5,) * 3, "std": (0.5,) * 3, **kwargs}
    with pytest.raises(TransferlabError, match=message):
        ImageTransform(**settings)
    with pytest.raises(TransferlabError, match="input size must be a positive number of pixels, got 0"):
        ImageTransform(8, 8, (0.5,) * 3, (0.5,) * 3).with_size(0)
