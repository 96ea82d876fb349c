"""ONNX export with resizing and normalisation inside the graph, run in onnxruntime against predict."""

from __future__ import annotations

import json

import numpy as np
import onnx  # onnx, onnxruntime and onnxscript are in the dev extra: absent, these tests fail, not skip
import onnxruntime as ort
import pytest
import torch

import transferlab
from transferlab.errors import TransferlabError
from transferlab.models.registry import create_backbone


def _run(path, images):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["probabilities"], {"images": images})[0]


def test_extract_model_matches_predict_at_any_input_size(tmp_path, digits):
    """A features model (frozen CNN + logistic-regression head), resize 8 -> 16 px inside the graph;
    inputs of another size are first brought to the training size there, as predict does."""
    weights = tmp_path / "cnn.pth"
    torch.manual_seed(0)
    torch.save(create_backbone("cifar_cnn").state_dict(), weights)
    clf = transferlab.TransferClassifier(backbone=f"cifar_cnn@{weights}", input_size=16)
    clf.fit(digits.images[:300], digits.labels[:300])
    path = transferlab.export_onnx(clf, tmp_path / "model.onnx")

    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(meta["class_names"]) == [str(c) for c in clf.classes_]
    test = digits.images[300:340]
    bigger = np.repeat(np.repeat(test, 3, axis=1), 2, axis=2)  # 24 x 16: resized inside the graph
    for images in (test, bigger, test[:1]):
        probabilities = _run(path, images)
        np.testing.assert_allclose(probabilities, clf.predict_proba(images), atol=1e-4)
        assert (clf.classes_[probabilities.argmax(1)] == clf.predict(images)).all()


@pytest.mark.filterwarnings("ignore::transferlab.errors.TransferlabWarning")  # predict says it resized
def test_network_model_file_with_a_centre_crop(tmp_path, digits):
    """A whole-network model read from its file: alexnet64 from scratch, whose transform resizes to 64 px
    and centre-crops 57 (Yosinski's), fed grey digits at their size and at twice it."""
    model = transferlab.fit("digits", "scratch", backbone="alexnet64", epochs=1, per_class=5, batch_size=50)
    assert (model.transform.resize, model.transform.crop) == (64, 57)
    file = model.save(tmp_path / "m.pt")
    path = transferlab.export_onnx(file, tmp_path / "m.onnx")
    images = digits.images[:6]
    for batch in (images, np.repeat(np.repeat(images, 2, axis=1), 2, axis=2)):
        np.testing.assert_allclose(_run(path, batch), model.predict_proba(batch), atol=1e-4)


def test_bad_inputs(tmp_path):
    with pytest.raises(TransferlabError, match="export_onnx takes a TrainedModel"):
        transferlab.export_onnx(object(), tmp_path / "x.onnx")
    with pytest.raises(TransferlabError, match="does not exist"):
        transferlab.export_onnx(tmp_path / "missing.pt", tmp_path / "x.onnx")


def test_cli_fit_writes_onnx_too(tmp_path, cli, digits):
    code, out, err = cli(
        "fit",
        "--dataset",
        "digits",
        "--strategy",
        "scratch",
        "--backbone",
        "shallow_cnn",
        "--input-size",
        "16",
        "--epochs",
        "1",
        "--per-class",
        "5",
        "-o",
        str(tmp_path / "m.pt"),
        "--onnx",
        str(tmp_path / "m.onnx"),
        "--json",
    )
    assert code == 0, err
    assert json.loads(out)["onnx"] == str(tmp_path / "m.onnx")
    model = transferlab.load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(
        _run(tmp_path / "m.onnx", digits.images[:4]), model.predict_proba(digits.images[:4]), atol=1e-4
    )


def test_timm_vit_exports(tmp_path, digits):
    """A timm ViT (class token, interpolated position embedding) on its weights file exports and matches."""
    backbone = create_backbone("timm:vit_tiny_patch16_224@random")
    weights = tmp_path / "vit.pth"
    torch.save(backbone.classifier._model[0].state_dict(), weights)
    clf = transferlab.TransferClassifier(backbone=f"timm:vit_tiny_patch16_224@{weights}", input_size=32)
    clf.fit(digits.images[:100], digits.labels[:100])
    path = transferlab.export_onnx(clf, tmp_path / "vit.onnx")
    images = digits.images[200:210]
    np.testing.assert_allclose(_run(path, images), clf.predict_proba(images), atol=1e-4)
