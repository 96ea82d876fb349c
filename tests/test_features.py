"""Feature extraction (eval + inference mode, any unit, fast path checked against eager) and the
content-keyed cache (hit, miss, torn or mismatched entries recomputed, ls/clear)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from transferlab import TransferlabError, TransferlabWarning, create_backbone
from transferlab import features as features_module
from transferlab.features import cached_features, clear_cache, extract_features, feature_key, list_cache

LITE = "efficientnet_lite0.in1k"


@pytest.fixture
def small_cnn():
    torch.manual_seed(0)
    return create_backbone("cifar_cnn_gap", pretrained=False, num_classes=3)


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "features"


def test_extraction_is_eval_mode_float32_and_restores_the_mode(small_cnn, digits):
    small_cnn.freeze(2).train()
    images = digits.images[:10]
    out = extract_features(small_cnn, images, batch_size=4)
    assert out.dtype == np.float32 and out.shape == (10, 128)
    assert small_cnn.training and not small_cnn.units["conv1_1"][2].training  # freeze's BN rule kept
    with torch.no_grad():
        expected = small_cnn.eval().forward_features(small_cnn.preprocess(images))
    np.testing.assert_allclose(out, expected.numpy(), rtol=1e-5, atol=1e-6)
    assert extract_features(small_cnn, images, layer=2).shape == (10, 32)
    assert extract_features(small_cnn, images, layer="conv2_2", pool="flatten").shape == (10, 64 * 8 * 8)
    assert extract_features(small_cnn, images[:0]).shape == (0, 128)


def test_fast_path_matches_eager_and_leaves_weights_alone(small_cnn, digits):
    before = small_cnn.weights_hash()
    images = digits.images[:37]  # a partial last batch
    eager = extract_features(small_cnn, images, batch_size=8, fast=False)
    fast = extract_features(small_cnn, images, batch_size=8, fast=True, progress=True)
    np.testing.assert_allclose(fast, eager, rtol=1e-4, atol=1e-4)
    assert small_cnn.weights_hash() == before


def test_data_parallel_workers_give_the_serial_features_in_order_and_restore_threads(
    small_cnn, digits, monkeypatch
):
    images = digits.images[:203]  # 26 batches of 8, the last partial
    threads = torch.get_num_threads()
    serial = extract_features(small_cnn, images, batch_size=8, fast=True, workers=1)
    calls = []
    real = features_module.run_jobs
    monkeypatch.setattr(
        features_module,
        "run_jobs",
        lambda jobs, workers: calls.append((len(jobs), workers)) or real(jobs, workers),
    )
    parallel = extract_features(small_cnn, images, batch_size=8, fast=True, workers=3)
    assert calls == [(25, 3)]  # the batches after the first (which traces), on the workers asked for
    np.testing.assert_array_equal(parallel, serial)  # per-image results, each in its own row
    assert torch.get_num_threads() == threads
    calls.clear()  # too few batches for 3 workers x 2 batches: fewer workers, same features
    np.testing.assert_array_equal(
        extract_features(small_cnn, images[:40], batch_size=8, fast=True, workers=3), serial[:40]
    )
    assert calls == [(4, 2)]
    calls.clear()  # eager mode runs Python per layer: it stays in the calling thread
    extract_features(small_cnn, images, batch_size=8, fast=False, workers=3)
    assert calls == [(25, 1)]


def test_a_failing_worker_stops_the_others_and_raises(small_cnn, digits, monkeypatch):
    seen = []
    real = features_module.faults.checkpoint

    def failing(point):
        seen.append(point)
        if len(seen) == 3:
            raise RuntimeError("disk gone")
        real(point)

    monkeypatch.setattr(features_module.faults, "checkpoint", failing)
    threads = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="disk gone"):
        extract_features(small_cnn, digits.images[:400], batch_size=4, fast=True, workers=2)
    assert len(seen) <= 4  # the other worker stopped at its next batch; the rest never started
    assert torch.get_num_threads() == threads


def test_fast_path_failure_falls_back_to_eager_with_a_warning(small_cnn, digits, monkeypatch):
    def broken(function, example):
        raise RuntimeError("cannot trace")

    monkeypatch.setattr(features_module, "_trace_frozen", broken)
    with pytest.warns(TransferlabWarning, match="fast extraction unavailable .*using eager mode"):
        out = extract_features(small_cnn, digits.images[:9], batch_size=4, fast=True)
    np.testing.assert_allclose(out, extract_features(small_cnn, digits.images[:9], fast=False), atol=1e-6)


def test_bad_arguments_are_named(small_cnn, digits):
    with pytest.raises(TransferlabError, match="batch_size must be a positive integer, got 0"):
        extract_features(small_cnn, digits.images[:2], batch_size=0)
    with pytest.raises(
        TransferlabError, match=r"workers must be a positive integer or None \(one per torch thread\), got 0"
    ):
        extract_features(small_cnn, digits.images[:2], workers=0)
    with pytest.raises(TransferlabError, match="must be uint8"):
        extract_features(small_cnn, digits.images[:2].astype(np.float32))
    with pytest.raises(TransferlabError, match=r"indices span 0\.\.5000 but digits has 1797 images"):
        cached_features(digits, np.array([0, 5000]), small_cnn)
    with pytest.raises(
        TransferlabError, match="cifar_cnn has random weights, so its features cannot be cached by name"
    ):
        cached_features(digits, None, "cifar_cnn")


def test_named_backbone_miss_then_hit_without_building(digits, cache_root, monkeypatch):
    indices = np.arange(0, 60, 3)
    first = cached_features(digits, indices, LITE, layer=3, size=32)
    assert first.shape == (20, 24) and first.dtype == np.float32
    entries = list_cache()
    assert [(e.backbone, e.layer, e.shape, e.dataset_name, e.complete) for e in entries] == [
        (LITE, "3", (20, 24), "digits", True)
    ]

    def no_build(*args, **kwargs):
        raise AssertionError("a cache hit must not build the backbone")

    monkeypatch.setattr("transferlab.models.registry.create_backbone", no_build)
    np.testing.assert_array_equal(cached_features(digits, indices, LITE, layer=3, size=32), first)


def test_a_second_miss_reuses_the_built_and_traced_backbone(digits, cache_root, monkeypatch):
    cached_features(digits, np.arange(0, 256), LITE, size=32)  # 4 batches: builds, traces (and keeps both)

    def no_build(*args, **kwargs):
        raise AssertionError("the backbone was built again")

    monkeypatch.setattr("transferlab.models.registry.create_backbone", no_build)
    few = cached_features(digits, np.arange(300, 310), LITE, size=32)  # one batch: the kept trace runs it
    monkeypatch.undo()
    eager = extract_features(create_backbone(LITE), digits.images[300:310], size=32, fast=False)
    np.testing.assert_allclose(few, eager, rtol=0, atol=1e-4)


def test_key_depends_on_everything_the_features_depend_on(digits, small_cnn):
    base = feature_key(digits, np.arange(10), LITE, layer=3, size=32)
    variants = [
        feature_key(digits, np.arange(11), LITE, layer=3, size=32),
        feature_key(digits, np.arange(10), LITE, layer=4, size=32),
        feature_key(digits, np.arange(10), LITE, layer=3, size=48),
        feature_key(digits, np.arange(10), LITE, layer=3, size=32, pool="flatten"),
        feature_key(digits, np.arange(10), "efficientnet_lite1.in1k", layer=3, size=32),
    ]
    assert len({base.digest(), *(v.digest() for v in variants)}) == 6
    assert base.weights.startswith("file:57934424") and base.dataset == digits.fingerprint()
    before = feature_key(digits, None, small_cnn)
    with torch.no_grad():
        small_cnn.classifier.fc.bias.add_(1.0)  # any change to the tensors is a new key
    assert feature_key(digits, None, small_cnn).digest() != before.digest()


def _entry_files(root):
    (array,) = root.glob("??/*.npy")
    return array, array.with_suffix(".json")


def test_key_has_the_features_format_not_the_code_version(digits, small_cnn, cache_root, monkeypatch):
    from transferlab.version import code_version

    base = feature_key(digits, np.arange(10), LITE, size=32)
    # A new release or any source edit keeps the cache (the release used to key it) ...
    monkeypatch.setattr("transferlab.__version__", "9.9.9")
    monkeypatch.setattr("transferlab.version.code_version", lambda: "9.9.9+src.00000000")
    assert feature_key(digits, np.arange(10), LITE, size=32) == base
    assert base.format == features_module.FEATURES_FORMAT
    # ... a bumped format does not.
    monkeypatch.setattr(features_module, "FEATURES_FORMAT", features_module.FEATURES_FORMAT + 1)
    assert feature_key(digits, np.arange(10), LITE, size=32).digest() != base.digest()
    monkeypatch.undo()
    monkeypatch.setenv("TRANSFERLAB_CACHE", str(cache_root.parent))
    cached_features(digits, np.arange(5), small_cnn)
    _, sidecar = _entry_files(cache_root)
    assert json.loads(sidecar.read_text())["code_version"] == code_version()  # who wrote the entry


@pytest.mark.parametrize("damage", ["torn array", "flipped bytes", "other key", "torn sidecar"])
def test_damaged_entries_are_recomputed_never_reused(digits, small_cnn, cache_root, damage):
    indices = np.arange(12)
    good = cached_features(digits, indices, small_cnn)
    array, sidecar = _entry_files(cache_root)
    if damage == "torn array":
        array.write_bytes(array.read_bytes()[:100])
    elif damage == "flipped bytes":
        raw = bytearray(array.read_bytes())
        raw[-5] ^= 0xFF
        array.write_bytes(bytes(raw))
    elif damage == "other key":
        meta = json.loads(sidecar.read_text())
        meta["key"]["layer"] = "2"
        sidecar.write_text(json.dumps(meta))
    else:
        sidecar.write_text(sidecar.read_text()[:20])
    with pytest.warns(TransferlabWarning, match="recomputing"):
        again = cached_features(digits, indices, small_cnn)
    np.testing.assert_allclose(again, good, atol=1e-6)
    np.testing.assert_array_equal(cached_features(digits, indices, small_cnn), again)  # repaired entry hits


def test_ls_marks_incomplete_entries_and_clear_removes_everything(digits, small_cnn, cache_root):
    cached_features(digits, np.arange(5), small_cnn)
    cached_features(digits, np.arange(6), small_cnn, layer=1)
    orphan = next(cache_root.glob("??/*.json"))
    orphan.unlink()  # an interrupted write: array without sidecar
    (cache_root / "ab").mkdir(exist_ok=True)
    (cache_root / "ab" / ".x.npy.123.tmp").write_bytes(b"partial")
    entries = list_cache()
    assert len(entries) == 2 and sorted(e.complete for e in entries) == [False, True]
    removed, freed = clear_cache()
    assert removed == 4 and freed > 0 and list_cache() == [] and not list(cache_root.iterdir())
