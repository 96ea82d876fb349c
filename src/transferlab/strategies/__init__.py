"""The strategy registry and :func:`run`, the one way to execute a :class:`RunSpec`.

Strategies (one module each): ``scratch``, ``augment``, ``extract``, ``finetune``, ``snt``, ``siamese``. Each module
defines ``STRATEGY`` (a :class:`Strategy` record) whose ``fit_evaluate(spec, data, progress=False)``
takes a resolved spec and the loaded dataset and returns a :class:`RunResult`.
"""

from __future__ import annotations

import time
import traceback

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError, options_hint
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies import augment, extract, finetune, scratch, siamese, snt
from transferlab.strategies.base import Strategy
from transferlab.train import TrainingFailed

_STRATEGIES: dict[str, Strategy] = {s.name: s for s in (m.STRATEGY for m in (scratch, augment, extract, finetune, snt, siamese))}


def list_strategies() -> list[Strategy]:
    """Registered strategies, in the order the studies introduce them."""
    return list(_STRATEGIES.values())


def get_strategy(name: str) -> Strategy:
    if name not in _STRATEGIES:
        raise TransferlabError(f"unknown strategy {name!r}{options_hint(str(name), _STRATEGIES)}")
    return _STRATEGIES[name]


def run(spec: RunSpec, data: ImageSet | None = None, *, progress: bool = False) -> RunResult:
    """Execute one run: resolve the spec's defaults, load its dataset (unless ``data`` is given), fit and
    evaluate. Bad input raises :class:`TransferlabError`; a run that fails while training (a NaN loss, an
    error inside the model) returns a RunResult with ``status="failed"`` and the reason in ``error``."""
    from transferlab import __version__
    from transferlab.data.datasets import load_dataset

    started = time.perf_counter()
    spec = spec.resolved()
    if data is None:
        data = load_dataset(spec.dataset)
    try:
        result = get_strategy(spec.strategy).fit_evaluate(spec, data, progress=progress)
    except TransferlabError:
        raise
    except TrainingFailed as failure:
        result = RunResult(spec=spec.to_dict(), status="failed", error=failure.reason, history=failure.history,
                           epochs_run=len(failure.history))  # fmt: skip
    except Exception as exc:  # a study records a crashed run and goes on; the traceback tail says where
        where = traceback.extract_tb(exc.__traceback__)[-1]
        result = RunResult(spec=spec.to_dict(), status="failed",
                           error=f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})")  # fmt: skip
    result.total_seconds = time.perf_counter() - started
    result.code_version = __version__
    return result


__all__ = ["Strategy", "get_strategy", "list_strategies", "run"]
