"""The dataset registry: built-ins load with their real counts; absent or unknown names say what to do."""

from __future__ import annotations

import numpy as np
import pytest

from transferlab import ImageSet, list_datasets, load_dataset
from transferlab.data.datasets import BuiltinDataset, register_dataset
from transferlab.errors import DatasetNotInstalledError, TransferlabError


def test_fashion_mnist_real_counts(fashion):
    assert fashion.images.shape == (70_000, 28, 28, 1) and fashion.images.dtype == np.uint8
    train = fashion.indices("train")
    assert len(train) == 60_000 and len(fashion.indices("test")) == 10_000
    assert fashion.class_counts(train).tolist() == [6000] * 10
    assert fashion.class_names[0] == "T-shirt/top" and fashion.class_names[9] == "Ankle boot"
    assert 60 < fashion.images.mean() < 90  # real clothing pixels (mean ~72.9), not zeros or noise


def test_mnist_real_counts(mnist):
    assert len(mnist.indices("train")) == 60_000 and len(mnist.indices("test")) == 10_000
    assert mnist.class_counts(mnist.indices("train"))[1] == 6742  # the well-known count of ones


def test_digits_is_bundled_and_scaled(digits):
    assert digits.images.shape == (1797, 8, 8, 1) and digits.images.max() == 255
    assert (digits.split == "train").all()  # no official split; splits.py carves a fixed test set


def test_imageset_is_read_only_and_fingerprint_is_content(digits):
    with pytest.raises(ValueError):
        digits.images[0, 0, 0, 0] = 1
    copy = ImageSet(digits.images.copy(), digits.labels.copy(), digits.class_names, digits.split.copy())
    assert copy.fingerprint() == digits.fingerprint()
    images = digits.images.copy()
    images[0, 0, 0, 0] ^= 1
    assert (
        ImageSet(images, digits.labels, digits.class_names, digits.split).fingerprint()
        != digits.fingerprint()
    )


def test_imageset_validates_its_arrays():
    with pytest.raises(TransferlabError, match="uint8"):
        ImageSet(np.zeros((2, 4, 4, 1), np.float32), np.zeros(2), ["a"], np.array(["train"] * 2))
    with pytest.raises(TransferlabError, match="labels span 0..3 but there are 2 class names"):
        ImageSet(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 3]), ["a", "b"], np.array(["train"] * 2))


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(
        TransferlabError, match=r"unknown dataset 'fashion_mnist' \(did you mean: fashion-mnist"
    ):
        load_dataset("fashion_mnist")
    with pytest.raises(TransferlabError, match=r"URI scheme 'folders' is unknown .*did you mean: folder"):
        load_dataset("folders:/tmp/x")


def test_absent_dataset_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_DATA", str(tmp_path))  # mnist has no system-wide location
    with pytest.raises(
        DatasetNotInstalledError, match=r"'mnist' is not installed .*transferlab data install mnist"
    ):
        load_dataset("mnist")


def test_registering_twice_raises():
    with pytest.raises(TransferlabError, match="already registered"):
        register_dataset(list_datasets()[0])
    assert isinstance(list_datasets()[0], BuiltinDataset)


def test_missing_uri_paths(tmp_path):
    for uri in (
        f"folder:{tmp_path}/nope",
        f"idx:{tmp_path}/nope",
        f"cifar10:{tmp_path}/nope",
        f"npz:{tmp_path}/x.npz",
    ):
        with pytest.raises(TransferlabError, match="does not exist"):
            load_dataset(uri)
