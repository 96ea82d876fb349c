"""Augmentation ops: what each does to an image, seeded reproducibility, parsing of the op list."""

from __future__ import annotations

import pytest
import torch

from transferlab.data.augment import AUGMENTATIONS, Augmenter, parse_augment, random_affine, random_crop
from transferlab.errors import TransferlabError


def batch(n: int = 16, size: int = 12) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_same_generator_seed_same_output_other_seed_differs():
    augmenter = Augmenter.from_names(AUGMENTATIONS, image_size=12)
    x = batch()
    assert torch.equal(augmenter(x, gen(3)), augmenter(x, gen(3)))
    assert not torch.equal(augmenter(x, gen(3)), augmenter(x, gen(4)))


def test_mirror_flips_about_half_the_images_and_nothing_else():
    x = batch(200)
    out = Augmenter(mirror=True)(x, gen())
    same = (out == x).flatten(1).all(1)
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    assert bool((same | flipped).all()) and 60 < int(flipped.sum()) < 140


def test_noise_has_the_asked_spread():
    x = batch(64)
    diff = Augmenter(noise_std=0.1)(x, gen()) - x
    assert abs(float(diff.mean())) < 0.01 and float(diff.std()) == pytest.approx(0.1, rel=0.05)


def test_random_crop_shifts_each_image_within_the_padding():
    x = torch.ones(50, 1, 8, 8)
    out = random_crop(x, 2, gen())
    assert out.shape == x.shape and set(out.unique().tolist()) <= {0.0, 1.0}
    ones = out.flatten(1).sum(1)
    assert bool((ones >= 6 * 6).all()) and bool((ones < 64).any())  # at most 2 px off per side; some moved
    # An image that is one bright pixel moves, it is not blurred: exactly one 1 survives when it stays in frame.
    dot = torch.zeros(1, 1, 8, 8)
    dot[0, 0, 4, 4] = 1
    assert float(random_crop(dot, 2, gen(5)).sum()) == 1.0


def test_affine_keeps_shape_and_changes_pixels_and_zero_limits_are_inactive():
    x = batch()
    out = random_affine(x, 10.0, 0.1, 0.1, gen())
    assert out.shape == x.shape and not torch.allclose(out, x)
    assert not Augmenter().active and Augmenter(rotation=5.0).active


def test_studies_settings_by_name():
    augmenter = Augmenter.from_names(("mirror", "noise"), image_size=32)
    assert augmenter == Augmenter(mirror=True, noise_std=0.1)
    assert Augmenter.from_names(("crop",), image_size=32).crop_padding == 4


def test_parse_augment_canonical_order_and_errors():
    assert parse_augment("noise, mirror") == ("mirror", "noise")
    assert parse_augment("none") == () and parse_augment(None) == ()
    with pytest.raises(
        TransferlabError, match="augmentation 'flip' is unknown.*valid: affine, crop, mirror, noise"
    ):
        parse_augment("flip")
    with pytest.raises(TransferlabError, match="twice"):
        parse_augment("mirror,mirror")


def test_non_batch_input_is_refused():
    with pytest.raises(TransferlabError, match=r"float batch \(N, C, H, W\)"):
        Augmenter(mirror=True)(torch.zeros(3, 8, 8), gen())
