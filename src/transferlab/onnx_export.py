"""Export a fitted model to ONNX with its whole preprocessing inside the graph.

The graph takes what a camera or an image decoder gives: ``images`` uint8 (N, H, W, C), any N, H and W,
C = the channels the model learned (1 or 3), and returns ``probabilities`` float32 (N, K) in the order of
the class names stored in the file's metadata (``class_names``, JSON). Inside, in the order
``TrainedModel.predict`` applies them: resize to the training images' size (antialiased bilinear,
rounded back to pixel values), scale to [0, 1], resize to the weights' side and centre-crop, grey to RGB,
normalise with the weights' mean/std, the network, softmax. So a runtime needs no transferlab, torch or
image library: tests/test_onnx_export.py runs the file in onnxruntime and matches ``predict_proba``.

Resize with antialiasing needs ONNX opset 18; the exporter is torch's (``torch.onnx.export``, dynamo).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from transferlab.errors import TransferlabError

OPSET = 18  # Resize's antialias attribute


class PreprocessAndPredict(nn.Module):
    """uint8 (N, H, W, C) -> probabilities (N, K): a TrainedModel's prepare + transform + module + softmax."""

    def __init__(self, trained) -> None:
        super().__init__()
        self.module = trained.module.eval()
        image, t = trained.payload["image"], trained.transform
        self.size = (int(image["height"]), int(image["width"]))
        self.resize, self.crop, self.interpolation = int(t.resize), int(t.crop), t.interpolation
        self.register_buffer("mean", torch.tensor(t.mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(t.std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(torch.float32)
        # TrainedModel.prepare: other sizes to the training images' size, as pixel values
        x = nn.functional.interpolate(x, size=self.size, mode="bilinear", antialias=True, align_corners=False)
        x = x.round().clamp(0.0, 255.0) / 255.0
        # ImageTransform: resize (clamped: bicubic overshoots), centre crop, grey -> RGB, normalise
        if self.interpolation == "nearest":
            x = nn.functional.interpolate(x, size=(self.resize, self.resize), mode="nearest")
        else:
            x = nn.functional.interpolate(
                x,
                size=(self.resize, self.resize),
                mode=self.interpolation,
                antialias=True,
                align_corners=False,
            ).clamp(0.0, 1.0)
        top = (self.resize - self.crop) // 2
        x = x[:, :, top : top + self.crop, top : top + self.crop]
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        return torch.softmax(self.module((x - self.mean) / self.std), dim=1)


def _trained(model):
    """A TrainedModel from a TrainedModel, a fitted TransferClassifier or a model file path."""
    from transferlab.model import TrainedModel, load_model

    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    if isinstance(model, TrainedModel):
        return model
    if hasattr(model, "model_") and isinstance(model.model_, TrainedModel):
        return model.model_
    raise TransferlabError(
        f"export_onnx takes a TrainedModel, a fitted TransferClassifier or a model file path, "
        f"got {type(model).__name__}"
    )


def export_onnx(model, path: str | os.PathLike, *, example_size: tuple[int, int] | None = None) -> Path:
    """Write ``model`` (a TrainedModel, a fitted TransferClassifier, or a model file written by ``transferlab
    fit``) to ``path`` as ONNX: input ``images`` uint8 (N, H, W, C), output ``probabilities`` (N, K); the
    metadata holds ``class_names`` (JSON), ``outputs`` and the preprocessing. example_size: (H, W) of the
    dummy batch the exporter traces (default: the training images'). Returns the path written."""
    try:
        import onnx
    except ImportError:
        raise TransferlabError(
            "export_onnx needs onnx and onnxscript: `pip install transferlab[onnx]`"
        ) from None
    from transferlab import paths

    trained = _trained(model)
    wrapper = PreprocessAndPredict(trained).eval()
    image = trained.payload["image"]
    height, width = example_size or (image["height"], image["width"])
    example = torch.zeros(2, height, width, image["channels"], dtype=torch.uint8)
    dims = {
        0: torch.export.Dim("batch", min=1),
        1: torch.export.Dim("height", min=2),
        2: torch.export.Dim("width", min=2),
    }
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the exporter's own progress notes and deprecations
        program = torch.onnx.export(
            wrapper,
            (example,),
            None,
            input_names=["images"],
            output_names=["probabilities"],
            dynamic_shapes=({**dims},),
            opset_version=OPSET,
            dynamo=True,
            verbose=False,
        )
    proto = program.model_proto
    metadata = {
        "class_names": json.dumps([str(c) for c in trained.classes_]),
        "outputs": trained.outputs,
        "preprocessing": json.dumps(trained.payload["preprocessing"]),
        "image": json.dumps(image),
        "architecture": str(trained.payload["architecture"]),
        "producer": "transferlab",
    }
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    path = Path(path)
    paths.atomic_write(path, lambda f: f.write(proto.SerializeToString()))
    return path
