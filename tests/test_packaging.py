"""Every third-party module the package imports is declared where a plain ``pip install transferlab``
gets it: in [project].dependencies, or in an extra other than ``dev`` (the test tools)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Imports that may be absent: each is guarded and a missing one is a TransferlabError saying what to install.
OPTIONAL = {"pyarrow"}  # `transferlab export --format parquet` only


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0]).lower()


def _imported_modules() -> dict[str, str]:
    """Top-level third-party module -> one file of the package that imports it."""
    found: dict[str, str] = {}
    for path in sorted((ROOT / "src" / "transferlab").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top != "transferlab" and top not in sys.stdlib_module_names:
                    found.setdefault(top, str(path.relative_to(ROOT)))
    return found


def test_every_runtime_import_is_a_declared_dependency():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {
        _name(r) for extra, reqs in project["optional-dependencies"].items() if extra != "dev" for r in reqs
    }
    distributions = packages_distributions()
    imported = _imported_modules()
    assert "skimage" in imported  # advise's ImageNet stand-in (the case this test was written for)
    undeclared = {
        module: where
        for module, where in imported.items()
        if module not in OPTIONAL and not {_name(d) for d in distributions.get(module, [module])} & declared
    }
    assert not undeclared, (
        f"imported at run time but not a dependency (module: a file importing it): {undeclared}"
    )
