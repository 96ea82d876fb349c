"""``transferlab study``: expand a spec, open (or resume) its directory, run what is missing, report.

A study directory holds ``spec.toml`` (the spec as given), ``study.sqlite`` (the store) and ``report/``.
Resuming with a spec whose grid differs is refused: mixing runs of two grids in one report would
silently answer a question nobody asked. The message says what changed and to use a new ``--dir``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from transferlab import paths
from transferlab.errors import TransferlabError
from transferlab.study.executors import check_executor, drive, make_executor
from transferlab.study.spec import StudySpec, load_study
from transferlab.study.store import Store


@dataclass
class StudyOutcome:
    directory: Path
    total: int
    done: int
    failed: int
    ran: int
    seconds: float
    report: Path | None = None


def _check_writable(directory: Path) -> None:
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=directory, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise TransferlabError(f"study directory {directory} is not writable: {exc.strerror}") from None


def open_study(study: StudySpec, directory: Path) -> Store:
    """The store of ``directory`` for ``study``: created on first use, refused if it holds another grid."""
    _check_writable(directory)
    store = Store(directory)
    known = store.get_meta("grid_hash")
    if known is None:
        paths.atomic_write(directory / "spec.toml", lambda f: f.write(study.text.encode()))
        for key, value in (
            ("name", study.name),
            ("description", study.description),
            ("spec_toml", study.text),
            ("grid_hash", study.grid_hash),
            ("created", time.strftime("%Y-%m-%d %H:%M:%S")),
        ):
            store.set_meta(key, value)
    elif known != study.grid_hash:
        stored = {r["run_id"] for r in store.runs()}
        new = {rid for rid, _ in study.runs}
        store.close()
        raise TransferlabError(
            f"{directory} holds a study with a different grid ({len(new - stored)} runs would be added, "
            f"{len(stored - new)} dropped): the spec changed since this study started. Run it in a new "
            f"directory (--dir), or restore the original spec ({directory / 'spec.toml'})"
        )
    return store


def _precheck_sizes(study: StudySpec) -> None:
    """Every distinct data split of the grid is built once before any run starts, so that a size a class
    cannot satisfy fails now, with its message, instead of as many failed runs."""
    from transferlab.data.datasets import load_dataset
    from transferlab.data.splits import make_task
    from transferlab.strategies.base import training_classes

    seen = set()
    for _, spec in study.runs:
        key = (
            spec.dataset,
            spec.source,
            spec.target,
            spec.swap,
            spec.side,
            spec.size,
            spec.per_class,
            spec.val_size,
            spec.test_per_class,
            spec.strategy,
            spec.source_dataset,
        )
        if key in seen:
            continue
        seen.add(key)
        data, classes = training_classes(spec, load_dataset(spec.dataset))
        try:
            make_task(
                data,
                classes,
                size=spec.size,
                per_class=spec.per_class,
                val_size=spec.val_size,
                test_per_class=spec.test_per_class,
                seed=spec.seed,
            )
        except TransferlabError as exc:
            size = f"per_class={spec.per_class}" if spec.per_class is not None else f"size={spec.size}"
            raise TransferlabError(f"{data.name} with {size}: {exc}") from None


def _precheck_backbones(study: StudySpec) -> None:
    """Every backbone of the grid exists and, for a strategy that starts from pretrained weights, its
    weight file is here and intact (sha256): one error now instead of every such run failing."""
    from transferlab.catalog import get_strategy
    from transferlab.models.registry import get_backbone_entry, list_backbones

    for name, strategy in sorted({(s.backbone, s.strategy) for _, s in study.runs}):
        entry = get_backbone_entry(name)
        if not get_strategy(strategy).needs_pretrained:
            continue
        if not entry.pretrained:
            raise TransferlabError(
                f"strategy {strategy!r} starts from pretrained weights, but backbone {name!r} has none (random "
                f"init); pretrained backbones: {', '.join(list_backbones(pretrained=True))}"
            )
        entry.find_weights()


def _describe(spec: dict) -> str:
    parts = [spec["strategy"], spec.get("backbone") or ""]
    if spec.get("head"):
        parts.append(spec["head"])
    for key in ("frozen", "transfer", "layer"):
        if spec.get(key) is not None:
            parts.append(f"{key}={spec[key]}")
    size = f"{spec['per_class']}/class" if spec.get("per_class") else f"{100 * spec['size']:g}%"
    return f"{'/'.join(p for p in parts if p)} {size} seed={spec['seed']}"


def _score(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


class _Progress:
    """A rich progress bar with ETA and the best validation accuracy so far, or plain lines (--quiet,
    or when stderr is not a terminal)."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.total, self.count, self.best = total, 0, None
        self.plain = quiet or not sys.stderr.isatty()
        if not self.plain:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                transient=False,
            )
            self._task = self._bar.add_task("runs", total=total)
            self._bar.start()

    def __call__(self, run_id: str, result: dict) -> None:
        self.count += 1
        spec = result.get("spec") or {}
        if result.get("status") == "ok":
            val = result.get("val_accuracy")  # None when the run had no validation set (val_size = 0)
            if val is not None and (self.best is None or val > self.best[0]):
                self.best = (val, _describe(spec))
            line = f"val {_score(val)} test {_score(result.get('test_accuracy'))} ({result['total_seconds']:.1f} s)"
        else:
            line = f"FAILED: {result.get('error')}"
        what = _describe(spec) if spec else run_id
        if self.plain:
            print(f"[{self.count}/{self.total}] {what}: {line}", file=sys.stderr, flush=True)
        else:
            best = f" | best val {self.best[0]:.3f}: {self.best[1]}" if self.best else ""
            self._bar.update(self._task, advance=1, description=f"runs{best}")

    def close(self) -> None:
        if not self.plain:
            self._bar.stop()


def run_study(
    spec_path: str | Path,
    directory: str | Path | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    address: str | None = None,
    threads: int | None = None,
    retry_failed: bool = False,
    quiet: bool = False,
    report: bool = True,
) -> StudyOutcome:
    """Run every missing run of the study at ``spec_path`` in ``directory`` (default runs/<name>)."""
    from transferlab.version import code_version

    started = time.perf_counter()
    check_executor(executor, workers, threads)  # before anything is created on disk
    study = load_study(spec_path)
    directory = Path(directory) if directory is not None else Path("runs") / study.name
    _precheck_sizes(study)
    _precheck_backbones(study)
    with open_study(study, directory) as store:
        store.add_runs((rid, spec.to_dict()) for rid, spec in study.runs)
        if retry_failed:
            store.retry_failed()
        todo = store.claimable()
        progress = _Progress(len(todo), quiet)
        try:
            pool = make_executor(executor, workers, address, threads)
            outcome = drive(store, todo, pool, on_result=progress, version=code_version())
        finally:
            progress.close()
        counts = store.counts()
    report_path = None
    if report:
        from transferlab.report import write_report

        report_path = write_report(directory)
    return StudyOutcome(
        directory,
        total=len(study.runs),
        done=counts["done"],
        failed=counts["failed"],
        ran=outcome.done + outcome.failed,
        seconds=time.perf_counter() - started,
        report=report_path,
    )
