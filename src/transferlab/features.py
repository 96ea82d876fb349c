"""Feature extraction (the expensive part of every frozen-backbone run) and its content-keyed disk cache.

Claim: a study pays for the convolutional base once per (images, backbone weights, layer, transform);
every head, learning rate and size subset then reads float32 (N, D) features from the cache.

Fast path (evidence: ``benchmarks/extract.py``, figures in benchmarks/README.md): the feature function
is traced with TorchScript and passed through ``torch.jit.optimize_for_inference`` (freezing, BatchNorm
folded into the convolutions, oneDNN convolutions with fused activations; plain ``torch.jit.freeze`` if
that fails), fed channels-last batches of 32 (small batches keep a layer's activations in cache: 32
beat 16, 64 and 256). Measured on the 2-core machine under heavy load from other processes, 1 thread:
1.5x the traced+frozen path of before and 3.3x a plain eager NCHW timm loop at batch 256 (see the README
for the idle figures). ``torch.compile`` (inductor, with freezing) was 14% faster still but took ~100 s
to compile, more than it saves on any cache fill of a study. The fast function is checked against eager
mode on the first batch and dropped (eager fallback, with a warning) if it fails to trace or disagrees;
tracing costs ~2-4 s, so a call takes the fast path from 4 batches on, or whenever a trace of the same
backbone is already kept (named backbones and their traces are built once per process).
After the first batch (which traces), the batches of a CPU fast-path call run on one single-threaded
worker per torch thread (``transferlab.parallel``; the same features bit for bit): on 2 cores, idle,
1.23x one 2-thread call, and far more on a loaded machine, where two OpenMP threads waiting for each
other collapse the rate.

Cache layout: ``<cache_dir()>/features/<key[:2]>/<key>.npy`` plus ``<key>.json`` (the key fields,
shape, dtype, the array's sha256 and the code version that wrote it). The key is the sha256 of: dataset
fingerprint, image indices, backbone name, weights hash, layer, pooling, preprocessing and
``FEATURES_FORMAT`` (not the code version, which changes with any edit). Writes are atomic (temp
file + rename; the sidecar, written last, marks an entry complete); a missing, torn or mismatched entry
is recomputed, never reused.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from transferlab import faults, paths
from transferlab.data.imageset import ImageSet
from transferlab.data.transforms import as_uint8_nhwc
from transferlab.errors import TransferlabError, TransferlabWarning
from transferlab.models.backbone import POOLS, Backbone
from transferlab.parallel import check_workers, run_jobs, worker_count
from transferlab.version import code_version

DEFAULT_BATCH_SIZE = 32  # best of 16/32/64/256 for Lite0 at 64 px (larger batches leave cache)
FAST_PATH_MIN_BATCHES = 4  # below this, tracing costs more than it saves
FAST_PATH_TOLERANCE = 1e-3  # max |traced - eager| relative to max |eager| (BN folding moves ~1e-5)
PARALLEL_MIN_BATCHES = 2  # per worker: below this, splitting the rest of a call is not worth a thread
# Part of every cache key. Bump it when a change alters the features computed for the same key fields
# (extraction, preprocessing, pooling, tracing numerics): entries of another format are then recomputed,
# never reused. Other edits leave it, so they keep the cache.
FEATURES_FORMAT = 1


# ------------------------------------------------------------------------------------ extraction


class _FeatureFunction(nn.Module):
    """forward(x) = backbone.forward_features(x, layer, pool): a module so TorchScript can trace it."""

    def __init__(self, backbone: Backbone, layer: int, pool: str) -> None:
        super().__init__()
        self.backbone, self.layer, self.pool = backbone, layer, pool

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone.forward_features(x, self.layer, self.pool)


FAST_PATH_OPTIMIZE = (
    True  # optimize_for_inference after tracing; False: trace + freeze only (the benchmark's "before")
)


def _trace_frozen(function: _FeatureFunction, example: torch.Tensor):
    """TorchScript trace of ``function`` (in eval mode) on ``example``, then
    ``torch.jit.optimize_for_inference`` (freeze, fold BatchNorm, oneDNN convolutions with fused
    activations), or plain ``torch.jit.freeze`` when ``FAST_PATH_OPTIMIZE`` is off or that fails."""
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        # Tracing warns that padding sizes become constants: true and intended, the input side is fixed.
        # torch >= 2.10 marks torch.jit deprecated; the eager fallback covers its eventual removal.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", FutureWarning)
        # Inference-mode tensors cannot be traced; a clone made outside inference mode can.
        traced = torch.jit.trace(function.eval(), example.clone(), check_trace=False)
        if FAST_PATH_OPTIMIZE:
            try:
                return torch.jit.optimize_for_inference(traced)
            except Exception:  # e.g. a build without oneDNN: freezing alone still folds BatchNorm
                pass
        return torch.jit.freeze(traced)


def _fast_function(function: _FeatureFunction, first_batch: torch.Tensor) -> torch.jit.ScriptModule | None:
    """The traced+frozen feature function, or None (with a warning) if it fails or disagrees with eager."""
    try:
        traced = _trace_frozen(function, first_batch)
        fast, eager = traced(first_batch), function(first_batch)
    except Exception as exc:  # any tracing failure just means: use eager mode
        warnings.warn(
            f"{function.backbone.name}: fast extraction unavailable ({type(exc).__name__}); using eager mode",
            TransferlabWarning,
            stacklevel=3,
        )
        return None
    error = (fast - eager).abs().max().item() / max(1.0, eager.abs().max().item())
    if not error <= FAST_PATH_TOLERANCE:
        warnings.warn(
            f"{function.backbone.name}: traced features differ from eager by {error:.2e}; using eager mode",
            TransferlabWarning,
            stacklevel=3,
        )
        return None
    return traced


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """eval() inside, the previous train/eval mode restored after (freeze's BN rule included)."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)


def _progress_bar(label: str):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(
        TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    )


def extract_features(
    backbone: Backbone,
    images: np.ndarray | torch.Tensor,
    layer: int | str | None = None,
    *,
    pool: str = "avg",
    size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    fast: bool | None = None,
    progress: bool = False,
    traced_cache: dict | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """uint8 (N, H, W, C) images -> float32 (N, D) features from the end of unit ``layer``.

    Runs under ``eval()`` + ``inference_mode()`` on the backbone's device and restores its mode.
    pool: "avg" (global average) or "flatten" for feature maps; size: input side override (default the
    weights' own); fast: traced+frozen channels-last path (None = when there are >= 4 batches);
    progress: a progress bar on stderr; traced_cache: a dict that keeps the traced function of this
    backbone per (layer, pool, input shape) across calls; only for a backbone whose weights never change
    afterwards (a frozen trace holds the weights as constants); workers: on the CPU fast path, batches run
    on this many threads of one torch thread each (None: one per torch thread; 1: serial).
    """
    pixels = as_uint8_nhwc(images)
    layer_index = backbone.resolve_layer(layer)
    if pool not in POOLS:
        raise TransferlabError(f"pool {pool!r} is unknown; valid: {', '.join(POOLS)}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise TransferlabError(f"batch_size must be a positive integer, got {batch_size!r}")
    check_workers(workers)
    device = next(backbone.parameters()).device
    transform = backbone.transform(size)
    batches = range(0, len(pixels), batch_size)
    # A trace kept from an earlier call costs nothing, so then even one batch takes the fast path.
    use_fast = (len(batches) >= FAST_PATH_MIN_BATCHES or bool(traced_cache)) if fast is None else fast
    out: np.ndarray | None = None
    with _eval_mode(backbone), torch.inference_mode(), contextlib.ExitStack() as stack:
        function = _FeatureFunction(backbone, layer_index, pool).eval()  # inside: eval() reaches the backbone
        bar = stack.enter_context(_progress_bar(backbone.name)) if progress else None
        task = bar.add_task("extract", total=len(pixels)) if bar else None

        lock = threading.Lock()

        def store(start: int, features: torch.Tensor) -> None:
            nonlocal out
            array = features.float().cpu().numpy()
            with lock:
                if out is None:
                    out = np.empty((len(pixels), array.shape[1]), dtype=np.float32)
                out[start : start + len(array)] = array
                faults.checkpoint("extract-batch")
                if bar:
                    bar.update(task, advance=len(array))

        def features_of(x: torch.Tensor) -> torch.Tensor:
            return run(x.contiguous(memory_format=torch.channels_last) if run is not function else x)

        run = function
        if len(batches):
            x = transform(pixels[:batch_size], device=device)
            if use_fast:  # one attempt: a failure falls back to eager for the whole call
                key = (layer_index, pool, tuple(x.shape[1:]), str(device))
                if traced_cache is not None and key in traced_cache:
                    fast_run = traced_cache[key]  # None: tracing failed before, eager again
                else:
                    fast_run = _fast_function(function, x.contiguous(memory_format=torch.channels_last))
                    if traced_cache is not None:
                        traced_cache[key] = fast_run
                run = fast_run or function
            store(0, features_of(x))
        # The rest on single-threaded workers when the traced function runs on the CPU (outside the GIL;
        # eager mode runs Python per layer, so it stays in this thread).
        parallel = run is not function and device.type == "cpu"
        workers = worker_count(
            len(batches) - 1, workers if parallel else 1, min_jobs_per_worker=PARALLEL_MIN_BATCHES
        )

        def job(start: int):
            def extract_batch(stop) -> None:
                with torch.inference_mode():  # per thread: workers do not inherit the caller's mode
                    store(start, features_of(transform(pixels[start : start + batch_size], device=device)))

            return extract_batch

        run_jobs([job(start) for start in batches[1:]], workers)
    if out is None:  # no images: the width is still well defined
        with _eval_mode(backbone), torch.inference_mode():
            probe = transform(np.zeros((1, 1, 1, 3), np.uint8), device=device)
            width = backbone.forward_features(probe, layer_index, pool).shape[1]
        out = np.empty((0, width), dtype=np.float32)
    return out


# ----------------------------------------------------------------------------------------- cache


@dataclass(frozen=True)
class FeatureKey:
    """Everything the features depend on. ``digest()`` names the cache entry."""

    dataset: str  # ImageSet.fingerprint()
    indices: str  # sha256 of the int64 indices
    count: int  # number of images
    backbone: str
    weights: str  # "file:<sha256>" (a name's pretrained file) or "state:<sha256>" (a Backbone's tensors)
    layer: str  # unit index or name as requested, "end" for the feature end
    pool: str
    transform: str  # ImageTransform.key()
    format: int  # FEATURES_FORMAT

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def features_dir() -> Path:
    """Where cached features live: ``<cache_dir()>/features``."""
    return paths.cache_dir() / "features"


def _entry_paths(digest: str, root: Path) -> tuple[Path, Path]:
    folder = root / digest[:2]
    return folder / f"{digest}.npy", folder / f"{digest}.json"


def _array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def _read_entry(key: FeatureKey, root: Path) -> tuple[np.ndarray | None, str]:
    """(features, "") on a valid hit; (None, why) when absent, torn or mismatched."""
    array_path, meta_path = _entry_paths(key.digest(), root)
    if not meta_path.is_file():
        return None, "absent"
    try:
        meta = json.loads(meta_path.read_text())
        if meta.get("key") != asdict(key):
            return None, "its recorded key differs"
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:  # torn or missing .npy, unparsable sidecar
        return None, f"unreadable ({type(exc).__name__})"
    if (
        array.dtype != np.float32
        or list(array.shape) != meta.get("shape")
        or _array_sha256(array) != meta.get("sha256")
    ):
        return None, "its contents do not match the recorded shape/checksum"
    return array, ""


def _write_entry(key: FeatureKey, array: np.ndarray, root: Path, seconds: float, dataset_name: str) -> None:
    array_path, meta_path = _entry_paths(key.digest(), root)
    meta = {
        "key": asdict(key),
        "shape": list(array.shape),
        "dtype": "float32",
        "sha256": _array_sha256(array),
        "dataset_name": dataset_name,
        "seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "code_version": code_version(),
    }
    # Array first, sidecar last: a sidecar only ever describes a complete array.
    paths.atomic_write(array_path, lambda f: np.save(f, array, allow_pickle=False))
    paths.atomic_write(meta_path, lambda f: f.write(json.dumps(meta, indent=1).encode()))


def _indices_array(image_set: ImageSet, indices: np.ndarray | None) -> np.ndarray:
    if indices is None:
        return np.arange(len(image_set), dtype=np.int64)
    idx = np.asarray(indices)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise TransferlabError(f"indices must be a 1-D integer array, got {idx.dtype} of shape {idx.shape}")
    idx = idx.astype(np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= len(image_set)):
        raise TransferlabError(
            f"indices span {idx.min()}..{idx.max()} but {image_set.name} has {len(image_set)} images (0..{len(image_set) - 1})"
        )
    return idx


def feature_key(
    image_set: ImageSet,
    indices: np.ndarray | None,
    backbone: str | Backbone,
    layer: int | str | None = None,
    pool: str = "avg",
    size: int | None = None,
) -> FeatureKey:
    """The cache key, without building a named backbone (its weight file's hash stands for its weights)."""
    from transferlab.models.registry import get_backbone_entry
    from transferlab.models.weights import file_sha256

    idx = _indices_array(image_set, indices)
    if isinstance(backbone, Backbone):
        name, weights, transform = backbone.name, f"state:{backbone.weights_hash()}", backbone.transform(size)
    else:
        entry = get_backbone_entry(backbone)
        if not entry.pretrained:
            raise TransferlabError(
                f"{backbone} has random weights, so its features cannot be cached by name; pass the Backbone "
                f"instance (its tensors are hashed) or a pretrained name: {', '.join(_pretrained_names())}"
            )
        name, weights = backbone, f"file:{file_sha256(entry.find_weights())}"
        transform = entry.spec.transform if size is None else entry.spec.transform.with_size(size)
    if pool not in POOLS:
        raise TransferlabError(f"pool {pool!r} is unknown; valid: {', '.join(POOLS)}")
    return FeatureKey(
        dataset=image_set.fingerprint(),
        indices=hashlib.sha256(idx.tobytes()).hexdigest(),
        count=len(idx),
        backbone=name,
        weights=weights,
        layer="end" if layer is None else str(layer),
        pool=pool,
        transform=transform.key(),
        format=FEATURES_FORMAT,
    )


# (name, device) -> (backbone, its traced functions)
_NAMED: dict[tuple[str, str], tuple[Backbone, dict]] = {}


def _named_backbone(name: str, device: str | torch.device | None) -> tuple[Backbone, dict]:
    """The pretrained backbone ``name`` on ``device`` and its traced-function cache, built once per process:
    a study fills several cache entries (train subsets, validation, test) from the same backbone, and
    building it (weights read and remapped, ~2 s) and tracing it (~2 s) each time cost more than
    extracting a small subset. Only this module holds it, so its weights never change."""
    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if (name, device) not in _NAMED:
        from transferlab.models.registry import create_backbone

        _NAMED.clear()  # keep one: a backbone's weights are tens of MB
        _NAMED[(name, device)] = (create_backbone(name).to(device), {})
    return _NAMED[(name, device)]


def _pretrained_names() -> list[str]:
    from transferlab.models.registry import list_backbones

    return list_backbones(pretrained=True)


def cached_features(
    image_set: ImageSet,
    indices: np.ndarray | None,
    backbone: str | Backbone,
    layer: int | str | None = None,
    *,
    pool: str = "avg",
    size: int | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    device: str | torch.device | None = None,
    progress: bool = False,
    cache: Path | None = None,
) -> np.ndarray:
    """float32 (len(indices), D) features of ``image_set.images[indices]`` (all images if None), read from
    the cache or extracted and stored.

    backbone: a pretrained name (built only on a miss; its weight file's hash keys the entry) or a
    Backbone instance (keyed by its current tensors, so a fine-tuned model never reuses stale features).
    device: where to run a named backbone on a miss (default: CUDA if available, else CPU).
    cache: cache root (default ``<cache_dir()>/features``).
    """
    key = feature_key(image_set, indices, backbone, layer, pool, size)
    root = Path(cache) if cache is not None else features_dir()
    array, why = _read_entry(key, root)
    if array is not None:
        return array
    array_path, _ = _entry_paths(key.digest(), root)
    # Parallel workers asking for the same entry: one extracts, the others wait here and then read it.
    with paths.exclusive(array_path.with_suffix(".lock")):
        array, _ = _read_entry(key, root)
        if array is not None:
            return array
        if why != "absent":
            warnings.warn(
                f"feature cache entry {key.digest()[:12]} ({key.backbone}) is {why}; recomputing",
                TransferlabWarning,
                stacklevel=2,
            )
        traced_cache = None
        if isinstance(backbone, str):
            backbone, traced_cache = _named_backbone(backbone, device)
        idx = _indices_array(image_set, indices)
        started = time.perf_counter()
        array = extract_features(
            backbone,
            image_set.images[idx],
            layer,
            pool=pool,
            size=size,
            batch_size=batch_size,
            progress=progress,
            traced_cache=traced_cache,
        )
        try:
            _write_entry(key, array, root, time.perf_counter() - started, image_set.name)
        except (
            OSError
        ) as exc:  # a full disk costs the cache entry, not the run (an array alone is never read)
            warnings.warn(
                f"feature cache entry {key.digest()[:12]} could not be written ({exc}); not cached",
                TransferlabWarning,
                stacklevel=2,
            )
    return array


# -------------------------------------------------------------------------------- listing, clearing


@dataclass(frozen=True)
class CacheEntry:
    """One cached feature array, as ``transferlab cache ls`` shows it."""

    digest: str
    dataset_name: str
    backbone: str
    layer: str
    pool: str
    shape: tuple[int, ...]
    bytes: int
    created: str
    complete: bool  # False: an array without a readable sidecar (an interrupted write); clear removes it


def list_cache(cache: Path | None = None) -> list[CacheEntry]:
    """Every entry under the cache root, newest first."""
    root = Path(cache) if cache is not None else features_dir()
    entries = []
    for array_path in sorted(root.glob("??/*.npy")):
        meta_path = array_path.with_suffix(".json")
        size = array_path.stat().st_size + (meta_path.stat().st_size if meta_path.is_file() else 0)
        try:
            meta = json.loads(meta_path.read_text())
            key = meta["key"]
            entries.append(
                CacheEntry(
                    array_path.stem,
                    meta.get("dataset_name", ""),
                    key["backbone"],
                    key["layer"],
                    key["pool"],
                    tuple(meta["shape"]),
                    size,
                    meta.get("created", ""),
                    True,
                )
            )
        except (OSError, ValueError, KeyError, TypeError):
            entries.append(CacheEntry(array_path.stem, "", "", "", "", (), size, "", False))
    return sorted(entries, key=lambda e: e.created, reverse=True)


def clear_cache(cache: Path | None = None) -> tuple[int, int]:
    """Delete every cached feature file (and leftover temp files); returns (files removed, bytes freed)."""
    root = Path(cache) if cache is not None else features_dir()
    removed, freed = 0, 0
    for path in [*root.glob("??/*.npy"), *root.glob("??/*.json"), *root.glob("??/.*.tmp")]:
        with contextlib.suppress(FileNotFoundError):  # a concurrent clear may have taken it
            size = path.stat().st_size
            path.unlink()
            removed, freed = removed + 1, freed + size
    for lock in root.glob("??/*.lock"):  # empty lock files of paths.exclusive: not entries, not counted
        lock.unlink(missing_ok=True)
    for folder in root.glob("??"):
        with contextlib.suppress(OSError):  # not empty: another process is writing into it
            folder.rmdir()
    return removed, freed
