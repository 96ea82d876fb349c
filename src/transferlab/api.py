"""The notebook API: what the command line does, as functions on plain Python values.

``transferlab.run(dataset, strategy, **settings)`` is ``transferlab run``; ``transferlab.study(spec,
directory)`` is ``transferlab study`` (a TOML file, TOML text, or the same grid as a dict);
``transferlab.fit(dataset, **settings)`` is ``transferlab fit`` (returns the TrainedModel: ``predict``,
``save``); ``transferlab.load_study(directory)`` opens a finished or running study: ``to_pandas()`` is the
long table ``transferlab export`` writes (one row per run), ``report()`` writes the HTML report.
Settings are RunSpec fields (``transferlab run --help`` lists them); a dataset is a name or URI, or an
:class:`~transferlab.data.imageset.ImageSet` already in memory. Bad input raises TransferlabError (a
ValueError) naming the value and the valid options, as the CLI's exit code 2 does.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError


def _spec(dataset: str | ImageSet, settings: dict[str, Any]):
    from transferlab.runs import RunSpec

    if "dataset" in settings:
        raise TransferlabError("give the dataset once, as the first argument")
    if isinstance(dataset, ImageSet):
        return RunSpec.from_dict({"dataset": dataset.name, **settings}), dataset
    if not isinstance(dataset, str):
        raise TransferlabError(
            f"dataset must be a name or URI (e.g. 'digits', 'folder:PATH') or an ImageSet, "
            f"got {type(dataset).__name__}"
        )
    return RunSpec.from_dict({"dataset": dataset, **settings}), None


def run(
    dataset: str | ImageSet,
    strategy: str,
    *,
    progress: bool = False,
    mlflow: str | os.PathLike | None = None,
    **settings: Any,
):
    """One run, as ``transferlab run``: returns its RunResult (``.to_dict()``; ``status`` "failed" with the
    reason in ``error`` when training failed). settings: RunSpec fields, e.g. ``per_class=20, head="fc2"``.
    mlflow: a tracking URI or folder to log the run to (experiment "transferlab"; transferlab/tracking.py)."""
    from transferlab.strategies import run as run_spec

    spec, data = _spec(dataset, {"strategy": strategy, **settings})
    result = run_spec(spec, data, progress=progress)
    if mlflow is not None:
        from transferlab.tracking import log_run

        log_run(result, mlflow)
    return result


def fit(dataset: str | ImageSet, strategy: str = "extract", *, progress: bool = False, **settings: Any):
    """Train a model, as ``transferlab fit``: returns the TrainedModel (``predict``, ``predict_proba``,
    ``save(path)``); its ``provenance["metrics"]`` holds the held-out validation and test accuracy."""
    from transferlab.model import fit as fit_model

    spec, data = _spec(dataset, {"strategy": strategy, **settings})
    model, _ = fit_model(spec, data, progress=progress)
    return model


# ------------------------------------------------------------------------------------------ studies


def _toml_value(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TransferlabError(f"{where} = {value!r}: a study value must be finite")
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a TOML basic string (same escapes)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v, where) for v in value) + "]"
    raise TransferlabError(
        f"{where} = {value!r}: a study value is a string, number, boolean or a list of them"
    )


def study_toml(grid: dict[str, Any]) -> str:
    """A study grid given as a dict (``name``, ``repeats``, ``base``: {...}, ``runs``: [{...}, ...]) as the
    TOML text ``transferlab study`` reads (the text is what the study directory keeps)."""
    if not isinstance(grid, dict):
        raise TransferlabError(f"a study grid is a dict, got {type(grid).__name__}")
    lines = []
    for key, value in grid.items():
        if key not in ("base", "runs"):
            lines.append(f"{key} = {_toml_value(value, key)}")
    base = grid.get("base", {})
    runs = grid.get("runs", [])
    if (
        not isinstance(base, dict)
        or not isinstance(runs, (list, tuple))
        or not all(isinstance(r, dict) for r in runs)
    ):
        raise TransferlabError(
            "a study grid's base is a dict of run settings and its runs a list of such dicts"
        )
    if base:
        lines += ["", "[base]"] + [f"{k} = {_toml_value(v, f'base.{k}')}" for k, v in base.items()]
    for i, block in enumerate(runs):
        lines += ["", "[[runs]]"] + [f"{k} = {_toml_value(v, f'runs[{i}].{k}')}" for k, v in block.items()]
    return "\n".join(lines) + "\n"


def study(
    spec: str | os.PathLike | dict,
    directory: str | os.PathLike | None = None,
    *,
    workers: int = 1,
    executor: str = "local",
    retry_failed: bool = False,
    quiet: bool = True,
    report: bool = True,
    mlflow: str | os.PathLike | None = None,
    experiment: str | None = None,
) -> Study:
    """Run a study, as ``transferlab study``: ``spec`` is a TOML file, TOML text, or a dict grid (see
    :func:`study_toml`); ``directory`` defaults to runs/<name>. Runs what is missing (resumable) and
    returns the :class:`Study` (``to_pandas()``, ``report()``). mlflow: a tracking URI or folder to log
    the study to (``experiment``, default the study's name; transferlab/tracking.py)."""
    result = _run_study(
        spec,
        directory,
        workers=workers,
        executor=executor,
        retry_failed=retry_failed,
        quiet=quiet,
        report=report,
    )
    if mlflow is not None:
        from transferlab.tracking import track_study

        track_study(result.directory, mlflow, experiment)
    return result


def _run_study(spec, directory, **options) -> Study:
    from transferlab.study.runner import run_study

    text: str | None = None
    if isinstance(spec, dict):
        text = study_toml(spec)
        name = spec.get("name") or (Path(directory).name if directory is not None else None)
        if not name:
            raise TransferlabError("a study given as a dict needs a name (or a directory)")
    elif isinstance(spec, str) and "\n" in spec:
        text, name = spec, None
    if text is None:
        return Study(run_study(spec, directory, **options).directory)
    with tempfile.TemporaryDirectory(prefix="transferlab-study-") as folder:
        path = Path(folder) / f"{name or 'study'}.toml"
        path.write_text(text, encoding="utf-8")
        outcome = run_study(path, directory, **options)
    return Study(outcome.directory)


class Study:
    """A study directory's results: ``rows()`` (the long table as dicts), ``to_pandas()``, ``counts()``,
    ``report()``. Reads the store each time, so a study that is still running shows its progress."""

    def __init__(self, directory: str | os.PathLike) -> None:
        from transferlab.study.export import open_study

        self.directory = Path(directory)
        with open_study(self.directory):  # a missing directory or store raises here, naming the fix
            pass

    def __repr__(self) -> str:
        counts = self.counts()
        return f"Study({str(self.directory)!r}, " + ", ".join(f"{k}={v}" for k, v in counts.items()) + ")"

    def counts(self) -> dict[str, int]:
        """Runs per status (pending, running, done, failed)."""
        from transferlab.study.export import open_study

        with open_study(self.directory) as store:
            return dict(store.counts())

    def rows(self) -> list[dict[str, Any]]:
        """One dict per run: spec fields, status, error, metrics, timings (nested values as JSON text), the
        columns of ``transferlab export``."""
        from transferlab.study.export import long_table, open_study

        with open_study(self.directory) as store:
            _, rows = long_table(store)
        return rows

    def to_pandas(self):
        """The long table as a pandas DataFrame (one row per run; needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise TransferlabError(
                "Study.to_pandas needs pandas: `pip install pandas` (or use Study.rows())"
            ) from None
        from transferlab.study.export import long_table, open_study

        with open_study(self.directory) as store:
            columns, rows = long_table(store)
        return pd.DataFrame(rows, columns=columns)

    def report(self) -> Path:
        """Write DIR/report (figures, tables, report.html) and return the HTML file's path."""
        from transferlab.report import write_report

        return write_report(self.directory)


def load_study(directory: str | os.PathLike) -> Study:
    """Open the study in ``directory`` (written by ``transferlab study`` or :func:`study`)."""
    return Study(directory)
