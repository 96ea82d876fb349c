"""A catalogue of bad inputs, one test each: the one-line message, the exit code (2 = bad input, 1 = a
run failed) and a study directory left exactly as it was (same files, spec and results).

Most commands run in this process (``transferlab.cli.main``) against a copy of the finished reference
study, so that "unharmed" is checked on a real study; the full-disk case needs a subprocess (a file size
limit) and the Ctrl-C case stops this very process with SIGINT at a known moment (the fault hook).
"""

from __future__ import annotations

import errno
import io
import json
import pickle
import resource
import shutil
import sqlite3
import struct
import subprocess
import sys
import zlib

import numpy as np
import pytest
from PIL import Image

from transferlab import paths
from transferlab.cli import main
from transferlab.data.datasets import load_dataset
from transferlab.errors import TransferlabWarning
from transferlab.faults import FAULT_ENV
from transferlab.features import cached_features
from transferlab.models.registry import get_backbone_entry
from transferlab.models.weights import WEIGHTS_DIR_ENV
from transferlab.study.store import Store

from .conftest import RUNS, SPEC, results

STUDY_FLAGS = ("--quiet", "--threads", "1", "--no-report")
BACKBONE = "efficientnet_lite0.in1k"


def snapshot(directory):
    """What must not change: the visible files, the spec as saved and every run's status and result."""
    files = sorted(p.name for p in directory.iterdir() if not p.name.startswith((".", "study.sqlite-")))
    return files, (directory / "spec.toml").read_bytes(), results(directory)


class Victim:
    """A copy of the finished reference study that a bad command is pointed at."""

    def __init__(self, directory):
        self.dir, self.before = directory, snapshot(directory)

    def unharmed(self) -> bool:
        return snapshot(self.dir) == self.before


@pytest.fixture
def victim(reference_study, tmp_path) -> Victim:
    shutil.copytree(reference_study, tmp_path / "study")
    return Victim(tmp_path / "study")


@pytest.fixture
def transferlab(capsys):
    """The CLI in this process: (exit code, stderr); ``call.stdout`` keeps the last stdout."""

    def call(*argv) -> tuple[int, str]:
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse usage errors
            code = exc.code
        captured = capsys.readouterr()
        call.stdout = captured.out
        return code, captured.err

    return call


def study_on(tmp_path, victim: Victim, transferlab, text: str) -> tuple[int, str]:
    """`transferlab study` of ``text`` in the victim's directory."""
    spec = tmp_path / "bad.toml"
    spec.write_text(text)
    return transferlab("study", spec, "--dir", victim.dir, *STUDY_FLAGS)


def with_dataset(uri) -> str:
    return SPEC.replace('dataset = "digits"', f'dataset = "{uri}"')


def png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def image_folder(root, per_class: int = 3, classes=("a", "b")):
    """root/<class>/<i>.png, 8x8 grey images."""
    rng = np.random.default_rng(0)
    for name in classes:
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{i}.png").write_bytes(png(rng.integers(0, 256, (8, 8), dtype=np.uint8)))
    return root


# ----------------------------------------------------------------------------------------- data files


def test_corrupt_image(tmp_path, victim, transferlab):
    folder = image_folder(tmp_path / "images")
    (folder / "b" / "bad.png").write_bytes(b"\x89PNG this is not an image at all" * 4)
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"folder:{folder}"))
    assert code == 2 and f"cannot decode image {folder / 'b' / 'bad.png'}" in err and "Traceback" not in err
    assert victim.unharmed()


def test_truncated_image(tmp_path, victim, transferlab):
    folder = image_folder(tmp_path / "images")
    whole = png(np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8))
    (folder / "a" / "cut.png").write_bytes(whole[: len(whole) // 2])
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"folder:{folder}"))
    assert code == 2 and f"cannot decode image {folder / 'a' / 'cut.png'}" in err and "truncated" in err
    assert victim.unharmed()


def idx_file(path, array: np.ndarray, cut: int = 0) -> None:
    """An IDX file of uint8 ``array``, minus its last ``cut`` bytes."""
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}i", *array.shape)
    data += array.astype(np.uint8).tobytes()
    path.write_bytes(data[: len(data) - cut])


def test_truncated_idx(tmp_path, victim, transferlab):
    folder = tmp_path / "idx"
    folder.mkdir()
    idx_file(folder / "train-images-idx3-ubyte", np.zeros((20, 8, 8)), cut=100)
    idx_file(folder / "train-labels-idx1-ubyte", np.arange(20) % 2)
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"idx:{folder}"))
    assert (
        code == 2
        and "train-images-idx3-ubyte: IDX header says shape (20, 8, 8) (1280 bytes of data) but "
        "the file holds 1180 (truncated or corrupt)"
        in err
    )
    assert victim.unharmed()


def test_idx_with_a_bad_magic_number(tmp_path, victim, transferlab):
    folder = tmp_path / "idx"
    folder.mkdir()
    (folder / "train-images-idx3-ubyte").write_bytes(b"GIF89a not an idx file")
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"idx:{folder}"))
    assert code == 2 and "train-images-idx3-ubyte is not an IDX file (bad magic number 47494638)" in err
    assert victim.unharmed()


def test_corrupt_cifar_pickle(tmp_path, victim, transferlab):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "data_batch_1").write_bytes(b"\x00\x01garbage, not a pickle")
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"cifar10:{tmp_path}"))
    assert code == 2 and f"cannot read CIFAR pickle {folder / 'data_batch_1'}" in err and "corrupt" in err
    assert victim.unharmed()


def test_truncated_cifar_pickle(tmp_path, victim, transferlab):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": np.zeros((10, 3072), np.uint8), b"labels": list(range(10))}
    whole = pickle.dumps(batch, protocol=2)
    (folder / "data_batch_1").write_bytes(whole[: len(whole) // 2])
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"cifar10:{folder}"))
    assert code == 2 and f"cannot read CIFAR pickle {folder / 'data_batch_1'}" in err and "truncated" in err
    assert victim.unharmed()


def test_empty_class_folder(tmp_path, victim, transferlab):
    folder = image_folder(tmp_path / "images")
    (folder / "c").mkdir()
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"folder:{folder}"))
    assert code == 2 and f"class folder {folder / 'c'} holds no images (.png, .jpg" in err
    assert victim.unharmed()


def test_class_folder_of_non_image_files(tmp_path, victim, transferlab):
    folder = image_folder(tmp_path / "images")
    (folder / "c").mkdir()
    (folder / "c" / "notes.txt").write_text("labels to do")
    (folder / "c" / "scan.pdf").write_bytes(b"%PDF-1.4")
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"folder:{folder}"))
    assert "warning: " in err and "skipped 2 non-image file(s) (notes.txt, scan.pdf)" in err
    assert code == 2 and f"class folder {folder / 'c'} holds no images" in err
    assert victim.unharmed()


def test_mixed_grey_rgba_16bit_and_palette_images_decode_alike(tmp_path, transferlab):
    """Not an error: every mode becomes the same uint8 RGB, 16-bit scaled (not clipped), alpha dropped."""
    folder = tmp_path / "mixed"
    for c, name in enumerate(("a", "b")):
        (folder / name).mkdir(parents=True)
        level = 60 + 120 * c
        for i in range(5):
            (folder / name / f"grey{i}.png").write_bytes(png(np.full((8, 8), level, np.uint8)))
            rgba = np.dstack([np.full((8, 8), level, np.uint8)] * 3 + [np.zeros((8, 8), np.uint8)])
            (folder / name / f"rgba{i}.png").write_bytes(png(rgba, "RGBA"))
            deep = Image.fromarray(np.full((8, 8), level * 257, np.uint16))  # 16-bit, same brightness
            deep.save(folder / name / f"deep{i}.png")
            palette = Image.fromarray(np.full((8, 8, 3), level, np.uint8)).convert(
                "P", palette=Image.Palette.ADAPTIVE
            )
            palette.save(folder / name / f"palette{i}.png")
    data = load_dataset(f"folder:{folder}")
    assert data.images.shape == (40, 8, 8, 3) and data.images.dtype == np.uint8
    for c in (0, 1):
        assert set(np.unique(data.images[data.labels == c])) == {60 + 120 * c}
    code, err = transferlab(
        "run",
        "--dataset",
        f"folder:{folder}",
        "--strategy",
        "scratch",
        "--backbone",
        "shallow_cnn",
        "--input-size",
        "8",
        "--epochs",
        "3",
        "--per-class",
        "8",
        "--val-size",
        "0",
        "--quiet",
    )
    assert code == 0, err


# ------------------------------------------------------------------------------------ sizes and specs


def test_too_small_fraction(tmp_path, victim, transferlab):
    text = SPEC.replace("per_class = [10, 20]", "size = [0.001, 0.1]")
    code, err = study_on(tmp_path, victim, transferlab, text)
    assert code == 2 and "digits with size=0.001: size=0.001 gives 0.13 images for class '8'" in err
    assert "fewer than one per class. Use a fraction of at least 0.0037, or --per-class N" in err
    assert victim.unharmed()


def test_per_class_above_available(tmp_path, victim, transferlab):
    text = SPEC.replace("per_class = [10, 20]", "per_class = [10, 900]")
    code, err = study_on(tmp_path, victim, transferlab, text)
    assert code == 2 and "digits with per_class=900: per_class=900 is more than class" in err
    assert victim.unharmed()


def test_unknown_top_level_key(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace("repeats = 2", "repeat = 2"))
    assert code == 2 and "bad.toml line 4 (top level): unknown key 'repeat' (did you mean: repeats?)" in err
    assert victim.unharmed()


def test_mistyped_run_key(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace('head = "logreg"', 'heads = "logreg"'))
    assert code == 2 and "([[runs]] #2): unknown key 'heads' (did you mean: head, head_init?)" in err
    assert victim.unharmed()


def test_wrong_type(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace("epochs = 2", 'epochs = "2"'))
    assert code == 2 and "([base]): epochs = '2' has the wrong type str; expected int" in err
    assert victim.unharmed()


@pytest.mark.parametrize("lr", ["0.0", "-1e-3"])
def test_learning_rate_not_positive(tmp_path, victim, transferlab, lr):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace("epochs = 2", f"epochs = 2\nlr = {lr}"))
    assert code == 2 and f"lr={float(lr)!r} is invalid; give a number > 0" in err
    assert victim.unharmed()


def test_unknown_backbone(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace('"shallow_cnn"', '"shalow_cnn"'))
    assert code == 2 and "unknown backbone 'shalow_cnn' (did you mean: shallow_cnn" in err
    assert victim.unharmed()


def test_missing_weights(tmp_path, victim, transferlab, monkeypatch):
    """Checked once before any run, instead of every extract run failing with the same reason."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))  # no hub cache here, whatever the machine has
    text = SPEC.replace("efficientnet_lite0.in1k", "resnet18.tv_in1k")
    code, err = study_on(tmp_path, victim, transferlab, text)
    assert code == 2 and "resnet18.tv_in1k: weight file resnet18-" in err and "not found (searched" in err
    assert victim.unharmed()


def test_mismatched_weights(tmp_path, victim, transferlab, monkeypatch):
    """A file under the official name that is not the published one (another model, a torn download)."""
    entry = get_backbone_entry("efficientnet_lite0.in1k")
    (tmp_path / "weights").mkdir()
    impostor = tmp_path / "weights" / entry.spec.file
    impostor.write_bytes(entry.find_weights().read_bytes()[:-1000])
    monkeypatch.setenv(WEIGHTS_DIR_ENV, str(tmp_path / "weights"))  # searched first
    code, err = study_on(tmp_path, victim, transferlab, SPEC)
    assert code == 2 and f"weight file {impostor} has sha256" in err
    assert "it is corrupt, truncated or a different file" in err
    assert victim.unharmed()


def test_random_init_backbone_for_a_pretrained_strategy(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace("efficientnet_lite0.in1k", "cifar_cnn"))
    assert code == 2 and "'extract' starts from pretrained weights, but backbone 'cifar_cnn' has none" in err
    assert victim.unharmed()


def test_spec_edited_between_resumes(tmp_path, victim, transferlab):
    code, err = study_on(tmp_path, victim, transferlab, SPEC.replace("repeats = 2", "repeats = 3"))
    assert code == 2 and "holds a study with a different grid (4 runs would be added, 0 dropped)" in err
    assert victim.unharmed()
    code, err = study_on(tmp_path, victim, transferlab, "# comments do not change the grid\n" + SPEC)
    assert code == 0 and "8/8 runs done, 0 failed (0 ran now" in transferlab.stdout
    assert victim.unharmed()


def test_bad_command_line_values(tmp_path, victim, transferlab):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    code, err = transferlab("study", spec, "--dir", victim.dir, "--workers", "0")
    assert code == 2 and err.strip() == "transferlab: error: workers=0 is invalid; give a whole number >= 1"
    code, err = transferlab("study", spec, "--dir", victim.dir, "--workers", "two")
    assert code == 2 and "argument --workers: invalid int value: 'two'" in err
    assert victim.unharmed()


# ------------------------------------------------------------------------------- runs and directories


def test_diverging_training_is_a_failed_run_with_its_reason(tmp_path, transferlab):
    text = SPEC.replace("repeats = 2", "repeats = 1").replace("per_class = [10, 20]", "per_class = 10")
    text = text.replace("input_size = 8\n", 'input_size = 8\noptimizer = "sgd"\nlr = [1e-2, 1e12]\n')
    spec = tmp_path / "diverge.toml"
    spec.write_text(text)
    code, err = transferlab("study", spec, "--dir", tmp_path / "study", *STUDY_FLAGS)
    assert code == 1, err  # a run failed; the study went on
    with Store(tmp_path / "study") as store:
        runs = {(r["spec"]["strategy"], r["spec"]["lr"]): r for r in store.runs()}
    assert len(runs) == 3 and runs["scratch", 1e12]["status"] == "failed"
    assert "training diverged: try a smaller learning rate" in runs["scratch", 1e12]["error"]
    assert "(lr=1e+12, optimizer=sgd)" in runs["scratch", 1e12]["error"]
    assert runs["scratch", 1e-2]["status"] == runs["extract", 1e-3]["status"] == "done"


def test_unwritable_study_directory(tmp_path, transferlab):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")  # chmod cannot stop root; a file in the path stops everyone
    code, err = transferlab("study", spec, "--dir", blocker / "study", *STUDY_FLAGS)
    assert code == 2 and f"study directory {blocker / 'study'} is not writable" in err
    assert blocker.read_text() == "not a directory"


def test_corrupt_study_store(tmp_path, victim, transferlab):
    (victim.dir / "study.sqlite").write_bytes(b"not a database, whatever it was" * 200)
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    code, err = transferlab("study", spec, "--dir", victim.dir, *STUDY_FLAGS)
    assert code == 2 and f"open the study store {victim.dir / 'study.sqlite'}: file is not a database" in err
    garbage = (victim.dir / "study.sqlite").read_bytes()
    assert garbage == b"not a database, whatever it was" * 200  # left as it was


def test_full_cache_directory_costs_the_cache_entry_not_the_run(tmp_path, monkeypatch):
    digits = load_dataset("digits")
    expected = cached_features(digits, np.arange(8), BACKBONE, size=32, cache=tmp_path / "ok")

    def disk_full(path, write):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(paths, "atomic_write", disk_full)
    with pytest.warns(TransferlabWarning, match=r"could not be written \(\[Errno 28\] No space left"):
        features = cached_features(digits, np.arange(8), BACKBONE, size=32, cache=tmp_path / "full")
    np.testing.assert_array_equal(features, expected)
    assert not list((tmp_path / "full").rglob("*.npy"))


def _file_size_limit(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def test_full_study_directory(tmp_path, victim, transferlab, reference):
    """A disk that refuses writes (here a 32 kB file size limit, which root obeys too: the store's WAL
    outgrows it within a run or two) stops the study with a clear error; every finished run is intact
    and the same command resumes once there is room."""
    with sqlite3.connect(victim.dir / "study.sqlite") as db:  # a half-finished study: the last 4 runs to do
        db.execute("UPDATE runs SET status = 'pending', result = NULL, owner = NULL WHERE position >= 4")
        db.execute("DELETE FROM history WHERE run_id NOT IN (SELECT run_id FROM runs WHERE status = 'done')")
    db.close()
    half = {rid: r for rid, r in results(victim.dir).items() if r[0] == "done"}
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    proc = subprocess.run(
        [sys.executable, "-m", "transferlab.cli", "study", spec, "--dir", victim.dir, *STUDY_FLAGS],
        preexec_fn=_file_size_limit(32768),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    store = victim.dir / "study.sqlite"
    assert f"cannot write the study store {store}: disk I/O error (disk full" in proc.stderr
    assert "every finished run is kept: make room and run the same command to resume" in proc.stderr
    after = results(victim.dir)
    assert all(after[rid] == r for rid, r in half.items())  # nothing lost
    assert all(r == reference[rid] for rid, r in after.items() if r[0] == "done")  # nothing half-written
    code, err = transferlab("study", spec, "--dir", victim.dir, *STUDY_FLAGS)
    assert code == 0, err
    assert results(victim.dir) == reference


def test_ctrl_c_stops_cleanly_and_the_same_command_resumes(tmp_path, transferlab, monkeypatch, reference):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    monkeypatch.setenv(FAULT_ENV, "store-commit:3:INT")  # Ctrl-C while the third result is being stored
    code, err = transferlab("study", spec, "--dir", tmp_path / "study", *STUDY_FLAGS)
    assert code == 130 and "interrupted; finished work is kept, run the same command to resume" in err
    assert "Traceback" not in err
    with Store(tmp_path / "study") as store:
        counts = store.counts()  # the interrupted run's claim was given back
    assert counts == {"pending": RUNS - 2, "running": 0, "done": 2, "failed": 0}
    monkeypatch.delenv(FAULT_ENV)
    code, err = transferlab("study", spec, "--dir", tmp_path / "study", *STUDY_FLAGS)
    assert code == 0, err
    assert results(tmp_path / "study") == reference


# ------------------------------------------- adversarial review (issue 16): data the readers must refuse


def split_info(transferlab, uri) -> tuple[int, str]:
    """`transferlab split-info` of ``uri``: the cheapest command that loads a dataset."""
    return transferlab("split-info", uri)


def one_line_error(code: int, err: str, needle: str) -> bool:
    """Exit 2 with exactly one line on stderr (warnings aside) holding ``needle``, no traceback."""
    lines = [line for line in err.splitlines() if not line.startswith("transferlab: warning:")]
    return code == 2 and len(lines) == 1 and needle in lines[0] and "Traceback" not in err


def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG of a few bytes whose header claims width x height pixels (a decompression bomb's shape)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + header + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_png_claiming_20000_by_20000_pixels(tmp_path, transferlab):
    folder = image_folder(tmp_path / "images")
    (folder / "a" / "bomb.png").write_bytes(png_header_claiming(20000, 20000))
    code, err = split_info(transferlab, f"folder:{folder}")
    assert one_line_error(
        code, err, f"cannot decode image {folder / 'a' / 'bomb.png'}: its header claims too many"
    )


def test_image_over_pillows_warning_limit_is_refused_too(tmp_path, transferlab, monkeypatch):
    """Between MAX_IMAGE_PIXELS and twice that Pillow only warns (and decodes); the warning names no file."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50)  # the folder's 8x8 = 64 px images: warn, not error
    folder = image_folder(tmp_path / "images")
    code, err = split_info(transferlab, f"folder:{folder}")
    assert one_line_error(
        code, err, f"cannot decode image {folder / 'a' / '0.png'}: its header claims too many"
    )


def test_png_bomb_through_run_and_study(tmp_path, victim, transferlab):
    """The same bomb in a `folder:` dataset given to `run` and to `study` in an existing study's directory:
    one line naming the file, exit 2, and the study's store still reads, every result as it was."""
    folder = image_folder(tmp_path / "images")
    bomb = folder / "b" / "bomb.png"
    bomb.write_bytes(png_header_claiming(20000, 20000))
    needle = f"cannot decode image {bomb}: its header claims too many pixels"
    code, err = transferlab(
        "run",
        "--strategy",
        "scratch",
        "--dataset",
        f"folder:{folder}",
        "--backbone",
        "shallow_cnn",
        "--epochs",
        "1",
        "--quiet",
    )
    assert one_line_error(code, err, needle) and transferlab.stdout == ""
    code, err = study_on(tmp_path, victim, transferlab, with_dataset(f"folder:{folder}"))
    assert one_line_error(code, err, needle)
    assert victim.unharmed()  # reads the store: same files, spec, statuses and results
    with Store(victim.dir) as store:
        assert store.counts() == {"pending": 0, "running": 0, "done": RUNS, "failed": 0}


def npz(path, x, y, **extra):
    np.savez(path, x=x, y=y, **extra)
    return path


@pytest.mark.parametrize(
    ("label", "needle"),
    [
        (2**40, "label 1099511627776 is not a class index of 4 images"),
        (-3, "label -3 is negative; labels must be class indices 0..K-1"),
    ],
)
def test_npz_label_that_is_no_class_index(tmp_path, transferlab, label, needle):
    path = npz(tmp_path / "d.npz", np.zeros((4, 8, 8), np.uint8), np.array([0, 1, 0, label]))
    code, err = split_info(transferlab, f"npz:{path}")
    assert one_line_error(code, err, f"{path}: {needle}")


def test_idx_label_of_2_to_the_31(tmp_path, transferlab):
    folder = tmp_path / "idx"
    folder.mkdir()
    for prefix in ("train", "t10k"):
        idx_file(folder / f"{prefix}-images-idx3-ubyte", np.zeros((4, 8, 8)))
    labels = np.array([0, 1, 0, 2**31 - 1], ">i4")
    for prefix in ("train", "t10k"):
        data = struct.pack(">BBBB", 0, 0, 0x0C, 1) + struct.pack(">i", 4) + labels.tobytes()
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(data)
    code, err = split_info(transferlab, f"idx:{folder}")
    assert one_line_error(code, err, "label 2147483647 is not a class index of 8 images")


def test_npz_with_no_images(tmp_path, transferlab):
    path = npz(tmp_path / "empty.npz", np.zeros((0, 8, 8), np.uint8), np.zeros(0, np.int64))
    code, err = split_info(transferlab, f"npz:{path}")
    assert one_line_error(code, err, f"{path}: x holds 0 images")


def test_idx_float_images_are_refused_not_cast_to_black(tmp_path, transferlab):
    folder = tmp_path / "idx"
    folder.mkdir()
    pixels = np.full((4, 8, 8), 0.5, ">f4")  # in [0, 1]: a cast to uint8 would make every pixel 0
    for prefix in ("train", "t10k"):
        data = struct.pack(">BBBB", 0, 0, 0x0D, 3) + struct.pack(">3i", *pixels.shape) + pixels.tobytes()
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(data)
        idx_file(folder / f"{prefix}-labels-idx1-ubyte", np.arange(4) % 2)
    code, err = split_info(transferlab, f"idx:{folder}")
    assert one_line_error(
        code, err, "train images hold float32 values; transferlab reads IDX images of unsigned bytes"
    )


def test_folder_size_option_is_bounded(tmp_path, transferlab):
    folder = image_folder(tmp_path / "images")
    code, err = split_info(transferlab, f"folder:{folder}?size=60000")
    assert one_line_error(code, err, "?size=60000 is out of range; give 1..4096 pixels per side")


def test_empty_dataset_path_is_not_the_current_directory(tmp_path, transferlab, monkeypatch):
    monkeypatch.chdir(image_folder(tmp_path / "images"))  # a loadable folder, were "" read as "."
    for uri in ("folder:", "npz:", "folder:?size=8"):
        code, err = split_info(transferlab, uri)
        assert one_line_error(code, err, f"dataset URI {uri!r} names no path"), err


def test_folder_symlink_out_of_the_tree(tmp_path, transferlab):
    folder = image_folder(tmp_path / "images")
    outside = image_folder(tmp_path / "elsewhere", classes=("c",))
    (folder / "c").symlink_to(outside / "c")  # a class folder that is a link to another tree
    code, err = split_info(transferlab, f"folder:{folder}")
    assert one_line_error(code, err, f"folder {folder / 'c'} leads outside the dataset folder {folder}")
    (folder / "c").unlink()
    (folder / "a" / "x.png").symlink_to(outside / "c" / "0.png")  # one image that is a link out
    code, err = split_info(transferlab, f"folder:{folder}")
    assert one_line_error(code, err, f"file {folder / 'a' / 'x.png'} leads outside the dataset folder")


def tiny_imagenet(root, annotation: str):
    """A two-class Tiny-ImageNet layout whose val annotations hold ``annotation``."""
    wnids = ("n01", "n02")
    (root / "wnids.txt").parent.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids))
    for wnid in wnids:
        image_folder(root / "train" / wnid, classes=("images",))
    (root / "val" / "images").mkdir(parents=True)
    (root / "val" / "val_annotations.txt").write_text(f"{annotation}\tn01\t0\t0\t8\t8\n")
    return root


@pytest.mark.parametrize("name", ["../../secret.png", "/etc/hostname", "sub/../../x.png"])
def test_tiny_imagenet_annotation_outside_the_dataset(tmp_path, transferlab, name):
    root = tiny_imagenet(tmp_path / "tiny", name)
    code, err = split_info(transferlab, f"tiny-imagenet:{root}")
    assert one_line_error(code, err, f"val_annotations.txt line 1: image {name!r} is not a plain file name")


# ------------------------------------------------------------ adversarial review (issue 16): study specs


def test_spec_that_is_not_utf8(tmp_path, transferlab):
    spec = tmp_path / "latin1.toml"
    spec.write_bytes(SPEC.replace("shallow CNN", "r\xe9seau").encode("latin-1"))
    code, err = transferlab("study", spec, "--dry-run")
    assert one_line_error(code, err, f"study spec {spec} is not UTF-8 text (byte 0xe9 on line 3)")


@pytest.mark.parametrize(
    ("change", "count"),
    [
        (("repeats = 2", "repeats = 100000000"), "400,000,000 runs"),
        (("epochs = 2", "epochs = [" + ", ".join(map(str, range(1, 1001))) + "]"), "8,000 runs"),
    ],
)
def test_huge_grid_is_counted_not_expanded(tmp_path, transferlab, monkeypatch, change, count):
    from transferlab.study import spec as study_spec

    # A low limit, so that the second grid is cheap to refuse and to count.
    monkeypatch.setattr(study_spec, "MAX_RUNS", 1000)
    path = tmp_path / "huge.toml"
    path.write_text(SPEC.replace(*change))
    code, err = transferlab("study", path, "--dry-run")
    assert one_line_error(code, err, f"the grid expands to {count} (axes multiplied, times repeats)")
    assert "more than the limit of 1,000" in err


# ------------------------------------------------------ adversarial review (issue 16): studies and runs


@pytest.mark.parametrize(("flag", "value"), [("--workers", "0"), ("--threads", "0"), ("--threads", "-2")])
def test_workers_and_threads_are_checked_before_the_study_dir_exists(tmp_path, transferlab, flag, value):
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    code, err = transferlab("study", spec, "--dir", tmp_path / "study", flag, value, "--quiet")
    assert one_line_error(code, err, f"{flag[2:]}={value} is invalid; give a whole number >= 1")
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_weight_decay_must_be_finite(tmp_path, transferlab, value):
    code, err = transferlab(
        "run",
        "--dataset",
        "digits",
        "--strategy",
        "scratch",
        "--backbone",
        "shallow_cnn",
        "--weight-decay",
        value,
        "--quiet",
    )
    assert one_line_error(
        code, err, f"weight_decay={float(value)!r} is invalid; give a finite L2 coefficient >= 0"
    )


def test_study_without_validation_set_prints_its_progress(tmp_path, transferlab):
    """val_size = 0: runs have no validation accuracy, which the progress line printed as a number."""
    text = SPEC.replace("repeats = 2", "repeats = 1").replace("val_size = 5", "val_size = 0")
    text = text.replace("per_class = [10, 20]", "per_class = 10").split("[[runs]]")[:2]
    spec = tmp_path / "noval.toml"
    spec.write_text("[[runs]]".join(text))
    code, err = transferlab("study", spec, "--dir", tmp_path / "study", *STUDY_FLAGS)
    assert code == 0, err
    assert "[1/1] scratch/shallow_cnn/linear 10/class seed=0: val n/a test 0." in err


# ----------------------------------------------- adversarial review (issue 16): the command line itself


def test_unexpected_error_is_one_line_and_a_crash_file(tmp_path, transferlab, monkeypatch):
    from transferlab.data import datasets

    def broken():
        raise RuntimeError("something nobody foresaw\nsecond line")

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(datasets, "list_datasets", broken)
    code, err = transferlab("datasets")
    crash = next((tmp_path / "xdg" / "transferlab").glob("crash-*.txt"))
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert f"internal error: RuntimeError: something nobody foresaw (full traceback in {crash}; please" in err
    assert "Traceback (most recent call last)" in crash.read_text() and "in broken" in crash.read_text()


def test_file_the_system_refuses_is_one_line_naming_it(tmp_path, transferlab, monkeypatch):
    from transferlab.data import datasets

    def refused():
        raise PermissionError(13, "Permission denied", "/data/locked")

    monkeypatch.setattr(datasets, "list_datasets", refused)
    code, err = transferlab("datasets")
    assert one_line_error(code, err, "transferlab: error: /data/locked: Permission denied")


def test_json_into_a_closed_pipe_ends_quietly(tmp_path):
    """`transferlab ... --json | head -1`: the reader goes away before the output is written."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "transferlab.cli", "datasets", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 1 and err == ""


def test_every_json_command_prints_json(tmp_path, victim, transferlab, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    code, err = transferlab("export", victim.dir, "--json")
    assert code == 0, err
    assert json.loads(transferlab.stdout) == {"format": "csv", "path": str(victim.dir / "runs.csv")}
    code, err = transferlab("cache", "clear", "--json")
    assert code == 0 and json.loads(transferlab.stdout)["removed_files"] == 0
    code, err = transferlab("data", "install", "digits", "--json")
    assert code == 0 and json.loads(transferlab.stdout) == {
        "name": "digits",
        "status": "bundled",
        "folder": None,
    }
    code, err = transferlab("data", "install", "digits")
    assert transferlab.stdout == "digits: bundled with scikit-learn, nothing to install\n"


def test_export_to_a_directory(tmp_path, victim, transferlab):
    code, err = transferlab("export", victim.dir, "-o", tmp_path)
    assert one_line_error(code, err, f"export output {str(tmp_path)!r} is a directory; give a file name")
    assert victim.unharmed()


@pytest.mark.parametrize("where", ["under a file", "a directory"])
def test_fit_output_is_checked_before_training(tmp_path, transferlab, monkeypatch, where):
    from transferlab import model

    monkeypatch.setattr(model, "fit", lambda *a, **k: pytest.fail("trained although -o cannot be written"))
    blocker = tmp_path / "a-file"
    blocker.write_text("keep me")
    output, needle = {
        "under a file": (
            blocker / "model.pt",
            f"cannot write model file {str(blocker / 'model.pt')!r}: "
            f"{str(blocker)!r} is a file, not a folder",
        ),
        "a directory": (tmp_path, f"model file {str(tmp_path)!r} is a directory; give a file name"),
    }[where]
    code, err = transferlab("fit", "--dataset", "digits", "--strategy", "scratch", "-o", output)
    assert one_line_error(code, err, needle)
    assert blocker.read_text() == "keep me"


def damage_history_pages(store) -> None:
    """Garbage over the header of the history table's root page: the runs table still reads fine."""
    with sqlite3.connect(store) as db:
        page = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'history'").fetchone()[0]
        size = db.execute("PRAGMA page_size").fetchone()[0]
    db.close()
    data = bytearray(store.read_bytes())
    data[(page - 1) * size : (page - 1) * size + 8] = b"\x0d\x00\x07\xff\xff\x00\x00\x00"
    store.write_bytes(bytes(data))


def test_lightly_damaged_study_store(tmp_path, victim, transferlab):
    """Before: `study` said 8/8 done (it reads only the runs table) and `report` crashed on the history."""
    store = victim.dir / "study.sqlite"
    damage_history_pages(store)
    damaged = store.read_bytes()
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    for argv in (
        ("study", spec, "--dir", victim.dir, *STUDY_FLAGS),
        ("report", victim.dir),
        ("export", victim.dir),
        ("fit", "--from-study", victim.dir, "--best", "-o", tmp_path / "m.pt"),
    ):
        code, err = transferlab(*argv)
        assert one_line_error(
            code, err, f"the study store {store} is damaged: database disk image is malformed"
        )
        assert "it is left as it is (nothing was written to it)" in err
        assert store.read_bytes() == damaged
    assert not (tmp_path / "m.pt").exists() and not (victim.dir / "report").exists()


def test_foreign_sqlite_file_as_study_store(tmp_path, transferlab):
    directory = tmp_path / "study"
    directory.mkdir()
    with sqlite3.connect(directory / "study.sqlite") as db:
        db.execute("CREATE TABLE photos (id INTEGER, path TEXT)")
    db.close()
    before = (directory / "study.sqlite").read_bytes()
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    for argv in (("study", spec, "--dir", directory, *STUDY_FLAGS), ("report", directory)):
        code, err = transferlab(*argv)
        assert one_line_error(
            code,
            err,
            "study.sqlite is an SQLite database of another program (tables: photos), "
            "not a transferlab study store",
        )
        assert (directory / "study.sqlite").read_bytes() == before  # no meta table written into it
    assert sorted(p.name for p in directory.iterdir()) == ["study.sqlite"]


def grown(directory, copies: int = 40) -> None:
    """Many more finished runs in a study's store (its own runs again under new ids, with their histories):
    enough pages that the middle of the file is data, far from the schema and the tables' root pages."""
    with Store(directory) as store:
        done = store.runs("done")
        for i in range(copies):
            for run in done:
                run_id = f"{run['run_id']}-copy{i}"
                store.add_runs([(run_id, run["spec"])])
                assert store.claim(run_id)
                history = store.history(run["run_id"])
                assert store.finish(run_id, run["result"], history, version=run["version"])
    assert not (directory / "study.sqlite-wal").exists()  # all in the file: damage to it is all there is


def damage_a_data_page(store, how: str) -> int:
    """Damage one table leaf page near the middle of ``store`` (the 100-byte file header and the first pages
    untouched); returns its page number. Found by reading the file, as the damage itself is written."""
    with sqlite3.connect(store) as db:
        size = db.execute("PRAGMA page_size").fetchone()[0]
        total = db.execute("PRAGMA page_count").fetchone()[0]
    db.close()
    data = bytearray(store.read_bytes())
    assert len(data) == size * total

    def leaf_holding(needle: bytes) -> int:  # the first table leaf page (type 0x0d) from the middle on
        for page in range(total // 2, total + 1):
            start = (page - 1) * size
            if data[start] == 0x0D and needle in data[start : start + size]:
                return page
        raise AssertionError(f"no leaf page holds {needle!r}")

    rng = np.random.default_rng(16)
    if how == "page overwritten":  # the whole page is noise
        page = leaf_holding(b"")
        data[(page - 1) * size : page * size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()
    elif how == "cell pointers scrambled":  # noise over the array that locates the page's records
        page = leaf_holding(b"")
        start = (page - 1) * size + 8  # after a leaf page's 8-byte header
        data[start : start + 64] = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
    elif how == "record bytes scrambled":  # 512 bytes of noise in the middle of the page: inside a record
        page = leaf_holding(b"")
        middle = (page - 1) * size + size // 2
        data[middle : middle + 512] = rng.integers(0, 256, 512, dtype=np.uint8).tobytes()
    else:  # a few bytes of one record's text: the page structure is intact, so quick_check passes
        needle, replacement = {
            "result text garbled": (b'"test_accuracy": ', b'"test_accuracy"}}'),
            "text not UTF-8": (b'"dataset": "digits"', b'"dataset": "\xff\xfe\xff\xfe\xff\xfe"'),
        }[how]
        page = leaf_holding(needle)
        at = data.index(needle, (page - 1) * size)
        data[at : at + len(needle)] = replacement
    store.write_bytes(bytes(data))
    return page


@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("page overwritten", "database disk image is malformed"),
        ("cell pointers scrambled", "database disk image is malformed (quick_check: On tree page "),
        ("record bytes scrambled", "Could not decode to UTF-8 column 'result'"),
        ("result text garbled", "is not valid JSON (Expecting ':' delimiter"),
        ("text not UTF-8", "Could not decode to UTF-8 column 'spec'"),
    ],
)
def test_study_store_with_a_damaged_data_page(tmp_path, victim, transferlab, how, needle):
    """A store of many runs, its header valid and a data page in the middle of the file damaged: report,
    export and study each say so in one line naming the file, and leave every byte of it as it was. Damage
    inside a record passes quick_check; before, `study` then said "all done" (it reads no results) while
    report and export showed an internal error (invalid JSON)."""
    store = victim.dir / "study.sqlite"
    grown(victim.dir)
    page = damage_a_data_page(store, how)
    assert page > 8  # past the schema and every table's root page
    damaged = store.read_bytes()
    spec = tmp_path / "tiny.toml"
    spec.write_text(SPEC)
    commands = (
        ("report", victim.dir),
        ("export", victim.dir),
        ("study", spec, "--dir", victim.dir, *STUDY_FLAGS),
    )
    for argv in commands:
        code, err = transferlab(*argv)
        assert one_line_error(code, err, f"the study store {store} is damaged: "), (argv[0], code, err)
        assert needle in err and "it is left as it is (nothing was written to it)" in err
        assert store.read_bytes() == damaged, argv[0]
    assert not (victim.dir / "report").exists() and not (victim.dir / "runs.csv").exists()
