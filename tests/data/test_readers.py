"""Each format reader on small files written here in the exact real format, and each corrupt-file error."""

from __future__ import annotations

import gzip
import pickle
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from transferlab import load_dataset
from transferlab.data.readers import read_idx
from transferlab.errors import TransferlabError, TransferlabWarning

RNG = np.random.default_rng(0)


# ------------------------------------------------------------------------------- format writers


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    """IDX as LeCun documents it: 0, 0, type 0x08 (ubyte), ndim, big-endian int32 dims, then the data."""
    raw = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)


def make_idx_dir(root: Path, gz: bool, n_train: int = 30, n_test: int = 10) -> tuple[np.ndarray, np.ndarray]:
    root.mkdir(parents=True, exist_ok=True)
    images = RNG.integers(0, 256, (n_train + n_test, 28, 28), dtype=np.uint8)
    labels = np.arange(n_train + n_test) % 3
    write_idx(root / "train-images-idx3-ubyte", images[:n_train], gz)
    write_idx(root / "train-labels-idx1-ubyte", labels[:n_train], gz)
    write_idx(root / "t10k-images-idx3-ubyte", images[n_train:], gz)
    write_idx(root / "t10k-labels-idx1-ubyte", labels[n_train:], gz)
    return images, labels


def _pickle_dump(path: Path, obj: dict) -> None:
    # The real files are Python 2 cPickles with byte-string keys; protocol 2 is what they use.
    path.write_bytes(pickle.dumps(obj, protocol=2))


def make_cifar10(root: Path, per_batch: int = 6) -> np.ndarray:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    all_data = []
    for i in range(1, 6):
        data = RNG.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        all_data.append(data)
        _pickle_dump(
            folder / f"data_batch_{i}",
            {
                b"batch_label": f"training batch {i} of 5".encode(),
                b"labels": [int(x) for x in np.arange(per_batch) % 10],
                b"data": data,
                b"filenames": [b"x.png"] * per_batch,
            },
        )
    test = RNG.integers(0, 256, (4, 3072), dtype=np.uint8)
    _pickle_dump(
        folder / "test_batch",
        {
            b"batch_label": b"testing batch 1 of 1",
            b"labels": [0, 1, 2, 3],
            b"data": test,
            b"filenames": [b"t.png"] * 4,
        },
    )
    names = [
        b"airplane",
        b"automobile",
        b"bird",
        b"cat",
        b"deer",
        b"dog",
        b"frog",
        b"horse",
        b"ship",
        b"truck",
    ]
    _pickle_dump(
        folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": names, b"num_vis": 3072}
    )
    return np.concatenate(all_data + [test])


def make_cifar100(root: Path) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for part, n in (("train", 8), ("test", 4)):
        _pickle_dump(
            folder / part,
            {
                b"filenames": [b"f.png"] * n,
                b"batch_label": part.encode(),
                b"fine_labels": [int(x) for x in np.arange(n) % 4],
                b"coarse_labels": [int(x) for x in np.arange(n) % 2],
                b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8),
            },
        )
    _pickle_dump(
        folder / "meta",
        {
            b"fine_label_names": [b"apple", b"bee", b"cloud", b"dolphin"],
            b"coarse_label_names": [b"fruit", b"insects"],
        },
    )


# ------------------------------------------------------------------------------------------ IDX


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_round_trip(tmp_path, gz):
    images, labels = make_idx_dir(tmp_path / "d", gz)
    ds = load_dataset(f"idx:{tmp_path / 'd'}")
    assert ds.images.shape == (40, 28, 28, 1) and ds.images.dtype == np.uint8
    np.testing.assert_array_equal(ds.images[..., 0], images)
    np.testing.assert_array_equal(ds.labels, labels)
    assert (ds.split == "train").sum() == 30 and (ds.split == "test").sum() == 10
    assert ds.class_names == ["0", "1", "2"]


def test_idx_truncated_names_the_file(tmp_path):
    make_idx_dir(tmp_path, gz=False)
    victim = tmp_path / "train-images-idx3-ubyte"
    victim.write_bytes(victim.read_bytes()[:-100])
    with pytest.raises(TransferlabError, match=r"train-images-idx3-ubyte.*truncated"):
        load_dataset(f"idx:{tmp_path}")


def test_idx_bad_magic_and_bad_gzip(tmp_path):
    (tmp_path / "x-idx3-ubyte").write_bytes(b"\x12\x34\x08\x03rest")
    with pytest.raises(TransferlabError, match="not an IDX file"):
        read_idx(tmp_path / "x-idx3-ubyte")
    (tmp_path / "y-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 20)[:15])
    with pytest.raises(TransferlabError, match=r"y-idx3-ubyte.gz"):
        read_idx(tmp_path / "y-idx3-ubyte.gz")


def test_idx_missing_file_is_named(tmp_path):
    make_idx_dir(tmp_path, gz=True)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(TransferlabError, match="no t10k labels file"):
        load_dataset(f"idx:{tmp_path}")


# ---------------------------------------------------------------------------------------- CIFAR


def test_cifar10_reader_layout_and_pixels(tmp_path):
    data = make_cifar10(tmp_path)
    ds = load_dataset(f"cifar10:{tmp_path}")  # the parent of cifar-10-batches-py works
    assert ds.images.shape == (34, 32, 32, 3)
    assert ds.class_names[1] == "automobile" and ds.class_names[9] == "truck"
    assert (ds.split == "test").sum() == 4
    # row-major 3072 = 1024 red, 1024 green, 1024 blue: pixel (0, 1) of image 0 is data[0, [1, 1025, 2049]]
    np.testing.assert_array_equal(ds.images[0, 0, 1], data[0, [1, 1025, 2049]])
    same = load_dataset(f"cifar10:{tmp_path / 'cifar-10-batches-py'}")
    assert same.fingerprint() == ds.fingerprint()


def test_cifar100_fine_and_coarse(tmp_path):
    make_cifar100(tmp_path)
    fine = load_dataset(f"cifar100:{tmp_path}")
    coarse = load_dataset(f"cifar100:{tmp_path}?labels=coarse")
    assert fine.class_names == ["apple", "bee", "cloud", "dolphin"] and len(fine) == 12
    assert coarse.class_names == ["fruit", "insects"]
    with pytest.raises(TransferlabError, match="labels='medium'.*fine, coarse"):
        load_dataset(f"cifar100:{tmp_path}?labels=medium")
    with pytest.raises(TransferlabError, match="option 'size' is unknown; valid options: labels"):
        load_dataset(f"cifar100:{tmp_path}?size=3")


def test_cifar_truncated_pickle_names_the_file(tmp_path):
    make_cifar10(tmp_path)
    victim = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    victim.write_bytes(victim.read_bytes()[:500])
    with pytest.raises(TransferlabError, match=r"data_batch_3.*corrupt or truncated"):
        load_dataset(f"cifar10:{tmp_path}")


def test_cifar_pickle_with_code_is_refused(tmp_path):
    """A pickle can run code on load: only numpy arrays and plain containers are accepted."""
    make_cifar10(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(
        pickle.dumps({b"data": Evil(), b"labels": []})
    )
    with pytest.raises(TransferlabError, match=r"refusing to load builtins.print"):
        load_dataset(f"cifar10:{tmp_path}")


@pytest.mark.parametrize(
    ("names", "needle"),
    [
        (
            [b"airplane", b"\xffcat\xfe", *[b"c%d" % i for i in range(8)]],
            r"b'\xffcat\xfe' is not UTF-8 (invalid start byte)",
        ),
        (7, "'label_names' is a int, not a list of class names"),
    ],
)
def test_cifar_class_names_that_are_not_utf8_name_the_file(tmp_path, capsys, names, needle):
    """batches.meta's label_names are bytes in the real files: bytes that are not UTF-8 (or no list at all)
    are one error naming the file, in the library and on the command line (exit 2, no traceback)."""
    from transferlab.cli import main

    make_cifar10(tmp_path)
    meta = tmp_path / "cifar-10-batches-py" / "batches.meta"
    _pickle_dump(meta, {b"num_cases_per_batch": 6, b"label_names": names, b"num_vis": 3072})
    with pytest.raises(TransferlabError) as caught:
        load_dataset(f"cifar10:{tmp_path}")
    assert str(caught.value).startswith(f"{meta}: ") and needle in str(caught.value)
    capsys.readouterr()
    code = main(["split-info", f"cifar10:{tmp_path}"])
    err = capsys.readouterr().err
    assert (
        code == 2 and err.count("\n") == 1 and f"{meta}: " in err and needle in err and "Traceback" not in err
    )


# -------------------------------------------------------------------------------- image folders


def _save(path: Path, array: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)


def test_folder_mixed_modes_normalised_to_rgb(tmp_path):
    grey = RNG.integers(0, 256, (12, 12), dtype=np.uint8)
    rgb = RNG.integers(0, 256, (12, 12, 3), dtype=np.uint8)
    rgba = np.concatenate([rgb, np.full((12, 12, 1), 128, np.uint8)], axis=2)
    _save(tmp_path / "cat" / "a.png", grey)
    _save(tmp_path / "cat" / "b.jpg", rgb)
    _save(tmp_path / "dog" / "c.png", rgba)
    Image.fromarray(rgb).convert("P").save(tmp_path / "dog" / "d.png")  # palette image
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "dog" / "e.png")  # 16-bit grey PNG
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.class_names == ["cat", "dog"]
    assert ds.images.shape == (5, 12, 12, 3) and list(ds.labels) == [0, 0, 1, 1, 1]
    np.testing.assert_array_equal(ds.images[0], np.repeat(grey[..., None], 3, axis=2))  # grey -> RGB
    np.testing.assert_array_equal(ds.images[2], rgb)  # alpha dropped, colours kept
    np.testing.assert_array_equal(ds.images[4], np.repeat(grey[..., None], 3, axis=2))  # 16 bit -> 8 bit


def test_folder_all_grey_stays_one_channel_and_train_test_layout(tmp_path):
    for part, n in (("train", 3), ("test", 2)):
        for cls in ("happy", "sad"):
            for i in range(n):
                _save(tmp_path / part / cls / f"{i}.png", RNG.integers(0, 256, (10, 10), dtype=np.uint8))
    ds = load_dataset(f"folder:{tmp_path}")
    assert ds.images.shape == (10, 10, 10, 1)
    assert (ds.split == "train").sum() == 6 and (ds.split == "test").sum() == 4


def test_folder_mixed_sizes_resized_with_warning_or_explicit_size(tmp_path):
    _save(tmp_path / "a" / "1.png", RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    _save(tmp_path / "b" / "2.png", RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    with pytest.warns(TransferlabWarning, match=r"2 different sizes.*\?size=N"):
        ds = load_dataset(f"folder:{tmp_path}")
    assert ds.images.shape == (2, 18, 18, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_dataset(f"folder:{tmp_path}?size=8").images.shape == (2, 8, 8, 3)


def test_folder_non_image_files_skipped_with_warning(tmp_path):
    _save(tmp_path / "a" / "1.png", RNG.integers(0, 256, (8, 8), dtype=np.uint8))
    _save(tmp_path / "b" / "2.png", RNG.integers(0, 256, (8, 8), dtype=np.uint8))
    (tmp_path / "a" / "notes.txt").write_text("hello")
    (tmp_path / "a" / ".DS_Store").write_bytes(b"\0")
    with pytest.warns(TransferlabWarning, match=r"skipped 1 non-image file\(s\) \(notes.txt\)"):
        ds = load_dataset(f"folder:{tmp_path}")
    assert len(ds) == 2


def test_folder_empty_class_and_corrupt_image_are_errors(tmp_path):
    _save(tmp_path / "a" / "1.png", RNG.integers(0, 256, (8, 8), dtype=np.uint8))
    (tmp_path / "b").mkdir()
    with pytest.raises(TransferlabError, match=r"class folder .*b holds no images"):
        load_dataset(f"folder:{tmp_path}")
    (tmp_path / "b" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a jpeg")
    with pytest.raises(TransferlabError, match=r"cannot decode image .*broken.jpg"):
        load_dataset(f"folder:{tmp_path}")


def test_folder_truncated_png_is_named(tmp_path):
    _save(tmp_path / "a" / "1.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    _save(tmp_path / "b" / "2.png", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
    victim = tmp_path / "b" / "2.png"
    victim.write_bytes(victim.read_bytes()[:200])
    with pytest.raises(TransferlabError, match=r"2.png"):
        load_dataset(f"folder:{tmp_path}")


# -------------------------------------------------------------------------------- Tiny-ImageNet


def make_tiny_imagenet(root: Path) -> None:
    wnids = ["n01443537", "n01629819", "n01641577"]
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text(
        "n00001740\tentity\nn01443537\tgoldfish, Carassius auratus\nn01629819\tEuropean fire salamander, "
        "Salamandra salamandra\nn01641577\tbullfrog, Rana catesbeiana\n"
    )
    for w in wnids:
        for i in range(3):
            img = RNG.integers(0, 256, (64, 64) if i == 0 else (64, 64, 3), dtype=np.uint8)  # some are grey
            _save(root / "train" / w / "images" / f"{w}_{i}.JPEG", img)
        (root / "train" / w / f"{w}_boxes.txt").write_text("")  # real layout: boxes beside images/
    lines = []
    for i, w in enumerate(wnids * 2):
        _save(root / "val" / "images" / f"val_{i}.JPEG", RNG.integers(0, 256, (64, 64, 3), dtype=np.uint8))
        lines.append(f"val_{i}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")


def test_tiny_imagenet_reader(tmp_path):
    make_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    ds = load_dataset(f"tiny-imagenet:{tmp_path}")
    assert ds.class_names == ["goldfish", "European fire salamander", "bullfrog"]
    assert ds.images.shape == (15, 64, 64, 3)
    assert (ds.split == "train").sum() == 9 and (ds.split == "test").sum() == 6
    np.testing.assert_array_equal(np.bincount(ds.labels[ds.split == "test"]), [2, 2, 2])


def test_tiny_imagenet_unknown_wnid_in_annotations(tmp_path):
    make_tiny_imagenet(tmp_path)
    with open(tmp_path / "val" / "val_annotations.txt", "a") as f:
        f.write("val_x.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(TransferlabError, match=r"line 7: class 'n99999999' is not in wnids.txt"):
        load_dataset(f"tiny-imagenet:{tmp_path}")


# ------------------------------------------------------------------------------------------ npz


def test_npz_reader(tmp_path):
    x = RNG.integers(0, 256, (6, 5, 5), dtype=np.uint8)
    np.savez(
        tmp_path / "d.npz",
        x=x,
        y=np.array([0, 1, 2, 0, 1, 2]),
        class_names=np.array(["a", "b", "c"]),
        split=np.array(["train"] * 4 + ["test"] * 2),
    )
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    assert ds.images.shape == (6, 5, 5, 1) and ds.class_names == ["a", "b", "c"]
    assert list(ds.split) == ["train"] * 4 + ["test"] * 2


def test_npz_bad_contents(tmp_path):
    np.savez(tmp_path / "f.npz", x=np.zeros((2, 4, 4), np.float32), y=np.array([0, 1]))
    with pytest.raises(TransferlabError, match="x must be uint8"):
        load_dataset(f"npz:{tmp_path / 'f.npz'}")
    np.savez(tmp_path / "g.npz", images=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(TransferlabError, match=r"must hold arrays 'x' .* it holds \['images'\]"):
        load_dataset(f"npz:{tmp_path / 'g.npz'}")
    (tmp_path / "h.npz").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(TransferlabError, match=r"cannot read npz file .*h.npz"):
        load_dataset(f"npz:{tmp_path / 'h.npz'}")


# ------------------------------------------------------------------------------ CLI exit codes


def test_cli_corrupt_file_is_one_line_exit_2(tmp_path, cli):
    make_idx_dir(tmp_path, gz=True)
    victim = tmp_path / "t10k-images-idx3-ubyte.gz"
    victim.write_bytes(victim.read_bytes()[:40])
    code, out, err = cli("split-info", f"idx:{tmp_path}")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "t10k-images-idx3-ubyte.gz" in err and "Traceback" not in err
    assert victim.exists()  # nothing on disk is touched by a failed read
