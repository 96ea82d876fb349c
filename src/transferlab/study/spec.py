"""A study spec: TOML that names a grid of runs.

```toml
name = "quickstart"                 # study name (default directory runs/<name>)
description = "what it reproduces"
repeats = 3                         # seeds 0..2 (or give `seed = [...]` in [base])

[base]                              # RunSpec fields for every run; a list is an axis
dataset = "fashion-mnist"
size = [0.001, 0.01, 0.1]
epochs = 10

[[runs]]                            # one block per family of runs; its axes cross with [base]'s
strategy = "extract"
head = ["fc2", "logreg"]

[[runs]]
strategy = ["scratch", "augment"]
```

Axes in a ``[[runs]]`` block apply only to that block (conditional axes: a head axis in the extract
block does not multiply the scratch runs). Every run is validated as a :class:`RunSpec`; runs that
resolve to the same spec are one run (a run id is the hash of its resolved spec). Unknown keys and
wrong types fail with the key, its line and the valid choices.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from transferlab.errors import TransferlabError, options_hint
from transferlab.runs import RunSpec

TOP_LEVEL = {
    "name": "study name: letters, digits, '-', '_' (default directory runs/<name>)",
    "description": "what the study reproduces or asks",
    "repeats": "number of seeds per configuration (seeds 0..repeats-1); or give seed = [...] in [base]",
    "base": "table of RunSpec fields applied to every run (a list value is an axis)",
    "runs": "array of tables [[runs]], each a family of runs with its own axes",
}
MAX_RUNS = 100_000  # a grid beyond this is a typo (repeats = 100000000), and expanding it would fill memory
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,), "None": (type(None),)}


def _field_types() -> dict[str, tuple[type, ...]]:
    """RunSpec field -> accepted Python types, read from its annotations ('float | None', ...)."""
    out = {}
    for f in fields(RunSpec):
        accepted: tuple[type, ...] = ()
        for part in str(f.type).split("|"):
            accepted += _TYPES[part.strip()]
        out[f.name] = accepted
    return out


FIELD_TYPES = _field_types()


def _line_of(text: str, key: str, table: str | None, block: int | None = None) -> int | None:
    """1-based line where ``key =`` is set inside ``[table]`` (or the block-th ``[[runs]]``)."""
    current, runs_seen = None, -1
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([A-Za-z0-9_.-]+)\s*\]\]?", stripped)
        if header:
            current = header.group(1)
            if stripped.startswith("[[") and current == "runs":
                runs_seen += 1
            continue
        if re.match(rf"^{re.escape(key)}\s*=", stripped) or re.match(rf'^"{re.escape(key)}"\s*=', stripped):
            if current == table and (block is None or block == runs_seen):
                return number
    return None


@dataclass(frozen=True)
class StudySpec:
    """A parsed, expanded and validated study: ``runs`` are (run_id, resolved RunSpec), deduplicated."""

    name: str
    description: str
    text: str
    runs: tuple[tuple[str, RunSpec], ...]

    @property
    def grid_hash(self) -> str:
        """Hash of the set of run ids: two specs with the same grid (comments aside) are the same study."""
        return hashlib.sha256("\n".join(sorted(rid for rid, _ in self.runs)).encode()).hexdigest()

    def count_by_strategy(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for _, spec in self.runs:
            counts[spec.strategy] = counts.get(spec.strategy, 0) + 1
        return counts


# Release 0.1 resolved these fields to a fixed default even in runs they do not affect (epochs of a logreg
# head, bn_stats of extract); later releases leave them None there. Hashing the old filler keeps those runs'
# ids, so studies stored by 0.1 resume. Where the field does matter, a None means a new rule (the size-based
# budget instead of 20 epochs), a different run, and so rightly a different id.
_RELEASE_0_1_FILLERS = {"epochs": 20, "bn_stats": "recalibrate"}
# Settings added later whose resolved value is what release 0.1 did without naming it: hashed as absent.
_RELEASE_0_1_IMPLIED = {"head_init": "random"}


def _affects(name: str, spec: RunSpec) -> bool:
    if name == "epochs":
        return spec.trains_a_network()
    return spec.strategy_info.takes(
        name
    )  # bn_stats: extract's backbone runs in eval mode, its heads have no BN


def run_id(spec: RunSpec) -> str:
    """16 hex digits of the sha256 of the resolved spec's set fields: the identity of a run across restarts.
    Fields that resolve to None are left out, so a release that adds an optional RunSpec field (default
    None) keeps every existing run id, and a study started with the previous release still resumes."""
    fields = {
        name: value
        for name, value in spec.to_dict().items()
        if value is not None and _RELEASE_0_1_IMPLIED.get(name) != value
    }
    for name, value in _RELEASE_0_1_FILLERS.items():
        if name not in fields and not _affects(name, spec):
            fields[name] = value
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]


class _Where:
    """Formats 'in FILE line N ([table])' for messages."""

    def __init__(self, source: str, text: str) -> None:
        self.source, self.text = source, text

    def __call__(self, key: str, table: str | None, block: int | None = None) -> str:
        line = _line_of(self.text, key, table, block)
        section = f"[[runs]] #{block + 1}" if block is not None else (f"[{table}]" if table else "top level")
        return f"{self.source}{f' line {line}' if line else ''} ({section})"


def _check_value(key: str, value: Any, where: str) -> None:
    accepted = FIELD_TYPES[key]
    values = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        raise TransferlabError(f"{where}: {key} = [] is an empty axis; give at least one value")
    for v in values:
        ok = isinstance(v, accepted) and not (isinstance(v, bool) and bool not in accepted)
        if not ok:
            names = " or ".join(sorted({t.__name__.replace("NoneType", "none") for t in accepted}))
            raise TransferlabError(
                f"{where}: {key} = {v!r} has the wrong type {type(v).__name__}; expected {names}"
            )


def _check_table(table: dict, where: _Where, name: str, block: int | None = None) -> None:
    if not isinstance(table, dict):
        raise TransferlabError(f"{where.source}: [{name}] must be a table of RunSpec fields")
    for key, value in table.items():
        if key not in FIELD_TYPES:
            raise TransferlabError(
                f"{where(key, name, block)}: unknown key {key!r}{options_hint(key, FIELD_TYPES)}"
            )
        _check_value(key, value, where(key, name, block))


def _axes(table: dict) -> list[tuple[str, list]]:
    return [(k, v if isinstance(v, list) else [v]) for k, v in table.items()]


def parse_study(text: str, source: str = "<spec>") -> StudySpec:
    """Parse TOML text into an expanded, validated StudySpec (every run checked before any runs)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TransferlabError(f"{source} is not valid TOML: {exc}") from None
    where = _Where(source, text)
    for key in doc:
        if key not in TOP_LEVEL:
            raise TransferlabError(f"{where(key, None)}: unknown key {key!r}{options_hint(key, TOP_LEVEL)}")
    name = doc.get("name", Path(source).stem)
    if not isinstance(name, str) or not _NAME.match(name):
        raise TransferlabError(
            f"{where('name', None)}: name {name!r} must be letters, digits, '.', '-' or '_'"
        )
    description = doc.get("description", "")
    if not isinstance(description, str):
        raise TransferlabError(f"{where('description', None)}: description must be a string")
    base = doc.get("base", {})
    _check_table(base, where, "base")
    blocks = doc.get("runs", [{}])
    if not isinstance(blocks, list) or not blocks:
        raise TransferlabError(f"{where.source}: runs must be one or more [[runs]] tables")
    for i, block in enumerate(blocks):
        _check_table(block, where, "runs", i)
    repeats = doc.get("repeats")
    if repeats is not None:
        if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
            raise TransferlabError(
                f"{where('repeats', None)}: repeats = {repeats!r}; give a whole number >= 1"
            )
        if "seed" in base or any("seed" in b for b in blocks):
            raise TransferlabError(f"{where('repeats', None)}: give either repeats or a seed axis, not both")
    # Counted before anything is expanded: the product of the axes, not a list of them, decides.
    planned = sum(math.prod(len(v) for _, v in _axes({**base, **block})) for block in blocks) * (repeats or 1)
    if planned > MAX_RUNS:
        raise TransferlabError(
            f"{source}: the grid expands to {planned:,} runs (axes multiplied{', times repeats' if repeats else ''}), "
            f"more than the limit of {MAX_RUNS:,}; shorten an axis or lower repeats, or split it into several studies"
        )
    if repeats is not None:
        base = {**base, "seed": list(range(repeats))}

    runs: dict[str, RunSpec] = {}
    for i, block in enumerate(blocks):
        axes = _axes({**base, **block})  # a block's value replaces the base axis of the same name
        names = [k for k, _ in axes]
        for combo in itertools.product(*(values for _, values in axes)):
            settings = dict(zip(names, combo, strict=True))
            try:
                spec = RunSpec.from_dict(settings).resolved()
            except TransferlabError as exc:
                brief = ", ".join(f"{k}={v!r}" for k, v in settings.items())
                raise TransferlabError(f"{source} [[runs]] #{i + 1} with {brief}: {exc}") from None
            runs.setdefault(run_id(spec), spec)
    if not runs:
        raise TransferlabError(f"{source}: the grid is empty")
    return StudySpec(name=name, description=description, text=text, runs=tuple(runs.items()))


def load_study(path: str | Path) -> StudySpec:
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")  # TOML is UTF-8 by definition, whatever the locale says
    except OSError as exc:
        raise TransferlabError(f"cannot read study spec {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object[: exc.start].count(b"\n") + 1
        raise TransferlabError(
            f"study spec {path} is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} on line {line}); save it as "
            "UTF-8, as TOML requires"
        ) from None
    return parse_study(text, str(path))
