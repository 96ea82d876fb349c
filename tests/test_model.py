"""fit -> save -> load -> predict: identical predictions after the round trip, the file's accuracy equals
the run's, predict on a folder of PNGs of another size and channel count (said), and the bad inputs: a
file that is not a model, an empty folder, a study with no finished runs for fit --best."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import transferlab
from transferlab import model as model_module
from transferlab.cli import main
from transferlab.data.splits import make_task
from transferlab.errors import TransferlabError
from transferlab.model import MAX_CLASSES, fit, load_model
from transferlab.runs import RunSpec
from transferlab.version import code_version

sys.path.insert(0, str(Path(__file__).parent))
from report.conftest import StudyBuilder, spec  # noqa: E402

SPECS = {
    "extract": dict(
        strategy="extract",
        dataset="digits",
        backbone="efficientnet_lite0.in1k",
        input_size=32,
        head="logreg",
        per_class=40,
        test_per_class=20,
    ),
    "scratch": dict(strategy="scratch", dataset="digits", backbone="shallow_cnn", epochs=2),
}


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    """`transferlab ARGS` in this process (no interpreter start-up per call): (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def scratch_model(digits, tmp_path_factory):
    """A shallow CNN fitted on digits (2 epochs) and saved: (model, result, path)."""
    model, result = fit(RunSpec(**SPECS["scratch"]), digits)
    return model, result, model.save(tmp_path_factory.mktemp("model") / "scratch.pt")


def held_out(digits, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """The test images (uint8 NHWC) and class names a run with ``settings`` is scored on."""
    split = make_task(
        digits,
        None,
        size=None if "per_class" in settings else 1.0,
        per_class=settings.get("per_class"),
        val_size=0.1,
        test_per_class=settings.get("test_per_class"),
        seed=0,
    )
    return digits.images[split.test], np.array(digits.class_names)[digits.labels[split.test]]


@pytest.fixture(scope="module")
def test_images(digits):
    return held_out(digits, SPECS["scratch"])


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_fit_save_load_predict_round_trip(kind, digits, scratch_model, tmp_path):
    if kind == "scratch":
        model, result, path = scratch_model
    else:
        model, result = fit(RunSpec(**SPECS[kind]), digits)
        path = model.save(tmp_path / "model.pt")
    loaded = transferlab.load_model(path)
    images, names = held_out(digits, SPECS[kind])
    assert np.array_equal(model.predict_proba(images), loaded.predict_proba(images))  # bit-identical
    assert np.mean(loaded.predict(images) == names) == pytest.approx(
        result.test_accuracy
    )  # the run's own number
    assert result.test_accuracy > 0.5  # far above chance (0.1)
    provenance = loaded.provenance
    assert (
        provenance["dataset_fingerprint"] == digits.fingerprint() and provenance["spec"]["strategy"] == kind
    )
    assert provenance["transferlab_version"] == transferlab.__version__
    assert provenance["code_version"] == code_version() == result.code_version  # which code trained it
    assert list(loaded.classes_) == digits.class_names and loaded.payload["image"] == {
        "height": 8,
        "width": 8,
        "channels": 1,
    }
    raw = torch.load(path, weights_only=True)  # plain contents: no code runs when a model is opened
    assert raw["format"] == "transferlab-model" and isinstance(raw["state_dict"], dict)


def _write_pngs(folder: Path, images: np.ndarray, size: int) -> None:
    folder.mkdir(parents=True)
    for i, image in enumerate(images):
        Image.fromarray(image[..., 0]).resize((size, size), Image.Resampling.BILINEAR).convert("RGB").save(
            folder / f"{i:02d}.png"
        )


def test_cli_predict_on_a_folder_of_pngs(capsys, scratch_model, tmp_path, test_images):
    images, names = test_images
    model_path = scratch_model[2]
    # RGB 40x40 PNGs in a nested folder: another size and channel count than the 8x8 grey training images.
    _write_pngs(tmp_path / "pngs" / "nested", images[:12], size=40)
    code, out, err = run_cli(capsys, "predict", str(model_path), str(tmp_path / "pngs"), "--json")
    assert code == 0, err
    rows = [json.loads(line) for line in out.splitlines()]  # JSON lines: one object per image per line
    assert len(rows) == 12 and all(abs(sum(r["probabilities"].values()) - 1) < 1e-5 for r in rows)
    assert (
        "resized 12 image(s) (40x40) to the training size 8x8" in err
        and "converted 12 RGB image(s) to grey" in err
    )
    assert np.mean([r["class"] == n for r, n in zip(rows, names[:12], strict=True)]) >= 0.5
    code, out, _ = run_cli(
        capsys, "predict", str(model_path), str(tmp_path / "pngs" / "nested" / "00.png"), "--csv"
    )
    table = list(csv.reader(io.StringIO(out)))
    assert table[0][:3] == ["path", "class", "probability"] and len(table[0]) == 13 and len(table) == 2


def test_bad_inputs(capsys, scratch_model, tmp_path):
    not_a_model = tmp_path / "weights.pt"
    torch.save({"fc.weight": torch.zeros(2, 2)}, not_a_model)  # a torch file, but a bare state_dict
    with pytest.raises(TransferlabError, match="is not a transferlab model file .it holds a state_dict"):
        load_model(not_a_model)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    code, _, err = run_cli(capsys, "predict", str(text), str(tmp_path))
    assert code == 2 and "is not a transferlab model file" in err
    (tmp_path / "empty").mkdir()
    model_path = str(scratch_model[2])
    code, _, err = run_cli(capsys, "predict", model_path, str(tmp_path / "empty"))
    assert code == 2 and "holds no images" in err
    code, _, err = run_cli(capsys, "predict", model_path, str(tmp_path / "missing.png"))
    assert code == 2 and "does not exist" in err


def test_cli_fit_from_study_best(capsys, tmp_path):
    builder = StudyBuilder(tmp_path / "study")
    common = {"dataset": "digits", "backbone": "shallow_cnn", "epochs": 1, "per_class": 10, "size": None}
    builder.add(spec(strategy="scratch", lr=1e-3, **common), 0.6, 0.7, 100, 10)
    # Better test accuracy but worse validation: never chosen.
    builder.add(spec(strategy="scratch", lr=1e-2, **common), 0.9, 0.5, 100, 10)
    builder.close()
    study, output = str(tmp_path / "study"), str(tmp_path / "b.pt")
    code, out, err = run_cli(capsys, "fit", "--from-study", study, "--best", "-o", output, "--json")
    assert code == 0, err
    chosen = json.loads(out)["spec"]
    # Chosen on validation, trained on all training data.
    assert chosen["lr"] == 1e-3 and chosen["size"] == 1.0 and chosen["per_class"] is None
    empty = StudyBuilder(tmp_path / "empty")
    empty.fail(spec(strategy="scratch", dataset="digits"), "boom")
    empty.close()
    code, _, err = run_cli(
        capsys, "fit", "--from-study", str(tmp_path / "empty"), "--best", "-o", str(tmp_path / "c.pt")
    )
    assert code == 2 and "no finished runs" in err and not (tmp_path / "c.pt").exists()
    code, _, err = run_cli(capsys, "fit", "-o", str(tmp_path / "d.pt"))
    assert code == 2 and "fit needs --strategy and --dataset" in err


def _stretched(shape: tuple) -> torch.Tensor:
    """A tensor of any shape over one stored number (zero strides): a few bytes in the file."""
    return torch.zeros(1).as_strided(shape, (0,) * len(shape))


def _edited(payload: dict, edit: str) -> dict:
    """A copy of a model file's payload with one malformed header field."""
    p = {**payload, "provenance": dict(payload["provenance"]), "image": dict(payload["image"])}
    names = list(p["class_names"])
    if edit == "no provenance":
        del p["provenance"]
    elif edit == "no spec":
        del p["provenance"]["spec"]
    elif edit == "features without head":
        p["kind"] = "features"
    elif edit == "state_dict a list":
        p["state_dict"] = list(p["state_dict"].values())
    elif edit == "fewer class names":
        p["class_names"] = names[:-1]
    elif edit == "1e10 classes":
        p["num_classes"] = 10**10
    elif edit == "100,001 classes, consistently":  # a name per class: the count agrees, the bound does not
        p["num_classes"], p["class_names"] = MAX_CLASSES + 1, [f"c{i}" for i in range(MAX_CLASSES + 1)]
    elif edit == "50,000 classes, weights stretched":  # a 4 MB file whose classifier claims 50,000 rows
        p["num_classes"], p["class_names"] = 50_000, [f"c{i}" for i in range(50_000)]
        p["state_dict"] = {
            k: _stretched((50_000, *v.shape[1:])) if v.shape[0] == len(names) else v
            for k, v in p["state_dict"].items()
        }
    elif edit == "weights on the meta device":  # shapes without data
        state = p["state_dict"]
        p["state_dict"] = {k: v.to("meta") if k.startswith("classifier.") else v for k, v in state.items()}
    elif edit == "features head of 1e9 inputs":  # the head's width is read from its weight's shape
        p["kind"] = "features"
        p["state_dict"] = {**p["state_dict"], "head.1.weight": _stretched((len(names), 10**9))}
    elif edit == "one class more, consistently":
        p["num_classes"], p["class_names"] = len(names) + 1, [*names, "extra"]
    elif edit == "image 60000 px":
        p["image"]["height"] = 60000
    return p


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        ("no provenance", "model header field provenance is missing"),
        ("no spec", "model header field provenance.spec is missing"),
        ("features without head", "model header field state_dict holds no head weights"),
        ("state_dict a list", "model header field state_dict is a list, not a dict"),
        ("fewer class names", "model header field num_classes = 10 does not match the 9 class_names"),
        (
            "1e10 classes",
            "model header field num_classes = 10000000000 is out of range; valid: 1..100,000 classes",
        ),
        (
            "100,001 classes, consistently",
            "model header field num_classes = 100001 is out of range; valid: 1..100,000",
        ),
        (
            "50,000 classes, weights stretched",
            "model header field state_dict 'classifier.fc.weight' claims shape "
            "(50000, 128) (6,400,000 values) but the file holds 1 values for it",
        ),
        (
            "weights on the meta device",
            "model header field state_dict 'classifier.fc.weight' claims shape (10, 128) "
            "(1,280 values) but the file holds 0 values for it",
        ),
        (
            "features head of 1e9 inputs",
            "model header field state_dict 'head.1.weight' claims shape (10, 1000000000)",
        ),
        ("one class more, consistently", "has shape (10, "),
        ("image 60000 px", "model header field image.height = 60000 is out of range; valid: 1..4096 pixels"),
    ],
)
def test_malformed_model_header_names_file_and_field(
    capsys, scratch_model, tmp_path, monkeypatch, edit, needle
):
    """A file that loads safely (weights_only) but whose header is malformed: checked before anything is
    built, so a claimed size is never allocated. A tensor's shape is a claim too: a few bytes can hold any
    shape (zero strides, or the meta device), so the file must hold the values the shape claims."""
    built = []  # the device of every module built from the header: "meta" costs no memory

    def spy(payload, state):
        built.append(torch.get_default_device().type)
        return real(payload, state)

    real = model_module._module_of
    monkeypatch.setattr(model_module, "_module_of", spy)
    payload = torch.load(scratch_model[2], weights_only=True)
    path = tmp_path / "edited.pt"
    torch.save(_edited(payload, edit), path)
    assert path.stat().st_size < 6_000_000  # claims cheap to write; the checks keep them cheap to read
    with pytest.raises(TransferlabError, match=f"^'{path}': ") as caught:
        load_model(path)
    assert needle in str(caught.value)
    assert "cpu" not in built  # refused before a real module was allocated
    code, out, err = run_cli(capsys, "predict", str(path), str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and needle in err and "Traceback" not in err


def test_predict_on_a_decompression_bomb_names_the_file(capsys, scratch_model, tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    bomb = tmp_path / "bomb.png"  # a few bytes whose header claims 20000 x 20000 pixels
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )
    code, out, err = run_cli(capsys, "predict", str(scratch_model[2]), str(bomb), "--json")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert f"cannot decode image {bomb}: its header claims too many pixels" in err
