"""Test-only fault injection: stop this process at a named point, to prove a study survives it.

``TRANSFERLAB_FAULT="POINT:N:SIGNAL"`` makes the process send itself SIGNAL (``KILL`` or ``INT``) the
N-th time (1-based, counted per process) it reaches POINT. The reliability tests use it to SIGKILL a
study inside each phase deterministically (a timer cannot aim at a 5 ms store commit) and to press
Ctrl-C at a known moment. Unset, :func:`checkpoint` is one environment lookup. Points sit where a kill
does the most harm:
"""

from __future__ import annotations

import os
import signal

from transferlab.errors import TransferlabError, options_hint

FAULT_ENV = "TRANSFERLAB_FAULT"
POINTS = {
    "extract-batch": "after each batch of feature extraction (features.extract_features)",
    "atomic-write": "in paths.atomic_write: the temp file is written and synced, not yet renamed",
    "train-epoch": "after each training epoch (train.train)",
    "store-commit": "in Store.finish: the run is marked done inside its transaction, before COMMIT",
    "report-figure": "after each report figure's PNG, before its PDF (in the report's staging folder)",
}
SIGNALS = {"KILL": signal.SIGKILL, "INT": signal.SIGINT}
__doc__ += "".join(f"\n- ``{name}``: {where}" for name, where in POINTS.items())

_reached: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """Count a pass through ``point``; send the configured signal when it is the N-th."""
    fault = os.environ.get(FAULT_ENV)
    if not fault:
        return
    name, count, sig = _parse(fault)
    if point != name:
        return
    _reached[point] = _reached.get(point, 0) + 1
    if _reached[point] == count:
        os.kill(os.getpid(), sig)


def _parse(fault: str) -> tuple[str, int, signal.Signals]:
    name, _, rest = fault.partition(":")
    count, _, sig = rest.partition(":")
    if name not in POINTS:
        raise TransferlabError(
            f"{FAULT_ENV}={fault!r}: point {name!r} is unknown{options_hint(name, POINTS)}"
        )
    if not count.isdigit() or int(count) < 1 or sig not in SIGNALS:
        raise TransferlabError(
            f"{FAULT_ENV}={fault!r}: give POINT:N:SIGNAL with N >= 1 and SIGNAL KILL or INT"
        )
    return name, int(count), SIGNALS[sig]
