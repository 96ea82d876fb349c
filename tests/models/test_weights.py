"""Weight files: never a silent random fallback; missing, corrupt and ill-fitting files are named."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from transferlab import TransferlabError, create_backbone
from transferlab.models.weights import WEIGHTS_DIR_ENV, WeightsNotFoundError, candidate_paths


@pytest.fixture(autouse=True)
def empty_torch_hub(tmp_path, monkeypatch):
    """No weight file from this machine may leak in: an empty torch hub, no weights directory."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.delenv(WEIGHTS_DIR_ENV, raising=False)


def test_missing_torchvision_file_names_the_hub_path_and_how_to_get_it(tmp_path):
    with pytest.raises(WeightsNotFoundError) as info:
        create_backbone("vgg16.tv_in1k")
    message = str(info.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth") in message
    assert (
        "weights='IMAGENET1K_V1'" in message
        and "https://download.pytorch.org/models/vgg16-397923af.pth" in message
    )
    assert "weights=PATH" in message and WEIGHTS_DIR_ENV in message


def test_default_location_is_the_torch_hub_cache(monkeypatch):
    monkeypatch.delenv("TORCH_HOME")
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    expected = Path.home() / ".cache" / "torch" / "hub" / "checkpoints" / "vgg16-397923af.pth"
    assert candidate_paths("vgg16-397923af.pth")[-1] == expected


def test_scratch_names_need_no_file():
    backbone = create_backbone("resnet18.scratch")
    assert backbone.weights_file is None and backbone.weights_sha256 is None


def test_local_file_in_torchvision_layout_is_loaded(tmp_path):
    torch.manual_seed(0)
    state = torchvision.models.mobilenet_v2(weights=None).state_dict()
    path = tmp_path / "my-mobilenet.pth"
    torch.save(state, path)
    backbone = create_backbone("mobilenet_v2.tv_in1k", weights=path)
    assert torch.equal(backbone.units["stem"][0].weight, state["features.0.0.weight"])
    assert torch.equal(backbone.classifier.fc.weight, state["classifier.1.weight"])
    assert backbone.weights_file == str(path)


def test_weights_dir_file_with_the_wrong_hash_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path))
    torch.save(
        torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "mobilenet_v2-b0353104.pth"
    )
    with pytest.raises(TransferlabError, match=r"mobilenet_v2-b0353104\.pth has sha256 .* expected b0353104"):
        create_backbone("mobilenet_v2.tv_in1k")


def test_corrupt_and_foreign_files_are_named(tmp_path):
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "full.pth")
    torn = tmp_path / "torn.pth"
    torn.write_bytes((tmp_path / "full.pth").read_bytes()[:5000])
    with pytest.raises(
        TransferlabError, match=rf"weight file {torn} could not be read.*truncated or corrupt"
    ):
        create_backbone("mobilenet_v2.tv_in1k", weights=torn)
    listing = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(TransferlabError, match="holds a list, not a state_dict"):
        create_backbone("mobilenet_v2.tv_in1k", weights=listing)
    with pytest.raises(TransferlabError, match="does not exist"):
        create_backbone("mobilenet_v2.tv_in1k", weights=tmp_path / "nope.pth")


def test_weights_of_another_architecture_name_the_keys(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(
        TransferlabError, match=r"do not fit.*missing: features\.0\.0\.weight.*unexpected: conv1\.weight"
    ):
        create_backbone("mobilenet_v2.tv_in1k", weights=path)


def test_saved_backbone_round_trips_with_its_num_classes(tmp_path):
    trained = create_backbone("cifar_cnn", pretrained=False, num_classes=2)
    path = tmp_path / "cifar.pth"
    torch.save(trained.state_dict(), path)
    loaded = create_backbone("cifar_cnn", weights=path, num_classes=2)
    assert loaded.weights_hash() == trained.weights_hash()
    # Without num_classes the head is sized as saved (a study's extract/finetune arm on a fine-tuned file).
    assert create_backbone("cifar_cnn", weights=path).weights_hash() == trained.weights_hash()
    with pytest.raises(
        TransferlabError, match=r"classifier\.fc\.weight \(2, 128\) vs \(10, 128\).*num_classes"
    ):
        create_backbone("cifar_cnn", weights=path, num_classes=10)
    foreign = tmp_path / "foreign.pth"
    torch.save({"conv.weight": torch.zeros(1)}, foreign)
    with pytest.raises(
        TransferlabError, match="cifar_cnn: weights must be a state_dict saved from a transferlab Backbone"
    ):
        create_backbone("cifar_cnn", weights=foreign)
