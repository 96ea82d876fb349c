""":func:`run`, the one way to execute a :class:`RunSpec`, and :func:`run_batch`.

Strategies (one module each): ``scratch``, ``augment``, ``extract``, ``finetune``, ``snt``, ``siamese``. Each
module's ``fit_evaluate(spec, data, progress=False)`` takes a resolved spec and the loaded dataset and
returns a :class:`RunResult`; what a strategy is and takes is its record in :mod:`transferlab.catalog`
(re-exported here), which names the module.
"""

from __future__ import annotations

import time
import traceback

from transferlab.catalog import Strategy, get_strategy, list_strategies
from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError
from transferlab.runs import RunResult, RunSpec
from transferlab.train import TrainingFailed


def run(spec: RunSpec, data: ImageSet | None = None, *, progress: bool = False) -> RunResult:
    """Execute one run: resolve the spec's defaults, load its dataset (unless ``data`` is given), fit and
    evaluate. Bad input raises :class:`TransferlabError`; a run that fails while training (a NaN loss, an
    error inside the model) returns a RunResult with ``status="failed"`` and the reason in ``error``."""
    from transferlab.data.datasets import load_dataset
    from transferlab.version import code_version

    started = time.perf_counter()
    spec = spec.resolved()
    if data is None:
        data = load_dataset(spec.dataset)
    try:
        result = get_strategy(spec.strategy).fit_evaluate(spec, data, progress=progress)
    except TransferlabError:
        raise
    except TrainingFailed as failure:
        result = RunResult(
            spec=spec.to_dict(),
            status="failed",
            error=failure.reason,
            history=failure.history,
            epochs_run=len(failure.history),
        )
    except Exception as exc:  # a study records a crashed run and goes on; the traceback tail says where
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result = RunResult(
            spec=spec.to_dict(),
            status="failed",
            error=f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})",
        )
    result.total_seconds = time.perf_counter() - started
    result.code_version = code_version()
    return result


def run_batch(specs: list[RunSpec], data: ImageSet | None = None) -> list[RunResult]:
    """Execute several runs, sharing work where a strategy can: runs with equal ``Strategy.batch_key``
    (extract's fc1-3/gap heads on the same cached features, subset and batch order) train in one pass;
    every other run goes through :func:`run`. Each result is the one ``run(spec)`` records (to float32
    rounding for batched heads; ``hyperparameters["batched_with"]`` says how many trained together).
    Unlike :func:`run`, bad input fails only its own run: a TransferlabError becomes a failed result.
    ``data`` is the loaded dataset of every spec (default: loaded per dataset)."""
    from transferlab.data.datasets import load_dataset
    from transferlab.version import code_version

    resolved, results = [], [None] * len(specs)
    for i, spec in enumerate(specs):
        try:
            resolved.append((i, spec.resolved()))
        except TransferlabError as exc:
            results[i] = RunResult(spec=spec.to_dict(), status="failed", error=str(exc))
    groups: dict[tuple, list[tuple[int, RunSpec]]] = {}
    for i, spec in resolved:
        key = get_strategy(spec.strategy).batch_key(spec)
        groups.setdefault((i,) if key is None else key, []).append((i, spec))
    loaded: dict[str, ImageSet] = {}
    for members in groups.values():
        name = members[0][1].dataset
        if data is None and name not in loaded:
            loaded[name] = load_dataset(name)
        images = data if data is not None else loaded[name]
        if len(members) == 1:
            i, spec = members[0]
            try:
                results[i] = run(spec, images)
            except TransferlabError as exc:
                results[i] = RunResult(spec=spec.to_dict(), status="failed", error=str(exc))
            continue
        started = time.perf_counter()
        try:
            implementation = get_strategy(members[0][1].strategy).implementation
            outcomes = implementation.fit_evaluate_batch([spec for _, spec in members], images)
        except Exception as exc:  # a crash inside the batch fails its runs, as run() records a crashed run
            where = traceback.extract_tb(exc.__traceback__)[-1]
            crash = RuntimeError(f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")
            outcomes = [crash] * len(members)
        share = (time.perf_counter() - started) / len(members)
        for (i, spec), outcome in zip(members, outcomes, strict=True):
            if isinstance(outcome, RunResult):
                result = outcome
            elif isinstance(outcome, TrainingFailed):
                result = RunResult(
                    spec=spec.to_dict(),
                    status="failed",
                    error=outcome.reason,
                    history=outcome.history,
                    epochs_run=len(outcome.history),
                )
            else:
                result = RunResult(spec=spec.to_dict(), status="failed", error=str(outcome))
            result.total_seconds, result.code_version = share, code_version()
            results[i] = result
    return results


__all__ = ["Strategy", "get_strategy", "list_strategies", "run", "run_batch"]
