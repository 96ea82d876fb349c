"""``transferlab export``: a study's long table (one row per run: spec fields, status, error, result
metrics, timings, seed, code version) as CSV or Parquet, for analysis outside transferlab.

Nested values (the result's ``hyperparameters``) are written as JSON text, except the result's ``metrics``,
which get one column each (``metrics.one_shot_ci_low``, ...); the result's copy of the spec
is left out because the spec's fields are already columns. Parquet needs pyarrow (``pip install pyarrow``).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError, options_hint
from transferlab.study.store import Store

FORMATS = ("csv", "parquet")


def open_study(directory: str | os.PathLike) -> Store:
    """The store of an existing study; a missing directory or store is a TransferlabError (nothing is
    created, unlike ``Store(directory)``, which starts a new study)."""
    path = Path(directory)
    if not path.is_dir():
        raise TransferlabError(
            f"study directory {str(path)!r} does not exist; give the DIR of a study "
            "(`transferlab study SPEC.toml --dir DIR` creates one)"
        )
    if not (path / Store.FILENAME).is_file():
        raise TransferlabError(
            f"{str(path)!r} holds no study: {Store.FILENAME} is missing (run `transferlab study SPEC.toml "
            f"--dir {path}` first)"
        )
    return Store(path)


def long_table(store: Store) -> tuple[list[str], list[dict[str, Any]]]:
    """(columns in first-seen order, rows) of the store's long table with nested values as JSON text."""
    rows = []
    for row in store.table():
        row.pop("spec", None)  # RunResult.to_dict() repeats the spec; its fields are columns already
        metrics = row.pop("metrics", None) or {}  # strategy-specific numbers: one column each
        row.update({f"metrics.{name}": value for name, value in metrics.items()})
        rows.append(
            {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v for k, v in row.items()}
        )
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return list(columns), rows


def export_table(
    study_dir: str | os.PathLike, format: str = "csv", output: str | os.PathLike | None = None
) -> Path:
    """Write the long table of the study in ``study_dir`` as ``format`` (csv | parquet) to ``output``
    (default ``DIR/runs.<format>``), atomically; returns the path written."""
    if format not in FORMATS:
        raise TransferlabError(f"export format {format!r} is unknown{options_hint(format, FORMATS)}")
    if format == "parquet":
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise TransferlabError(
                "--format parquet needs pyarrow, which is not installed: "
                "`pip install pyarrow` (or use --format csv)"
            ) from None
    with open_study(study_dir) as store:
        columns, rows = long_table(store)
    path = Path(output) if output is not None else Path(study_dir) / f"runs.{format}"
    if path.is_dir():
        raise TransferlabError(
            f"export output {str(path)!r} is a directory; give a file name, e.g. "
            f"{str(path / f'runs.{format}')!r}"
        )
    if not path.parent.is_dir():
        raise TransferlabError(f"cannot write {str(path)!r}: folder {str(path.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        (write_csv if format == "csv" else write_parquet)(columns, rows, Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """CSV with a header; missing values are empty cells; floats keep full precision (repr)."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(
                ["" if (v := row.get(c)) is None else repr(v) if isinstance(v, float) else v for c in columns]
            )


def _arrow_type(values: list[Any]):
    import pyarrow as pa

    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        return pa.bool_()
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return pa.int64()
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return pa.float64()
    return pa.string()


def write_parquet(columns: list[str], rows: list[dict[str, Any]], path: Path) -> None:
    """Parquet with one typed column per field: bool, int64, float64, or string (mixed types as text)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        kind = _arrow_type(values)
        if kind == pa.string():
            values = [None if v is None else str(v) for v in values]
        elif kind == pa.float64():
            values = [None if v is None else float(v) for v in values]
        arrays[column] = pa.array(values, type=kind)
    pq.write_table(pa.table(arrays), path)
