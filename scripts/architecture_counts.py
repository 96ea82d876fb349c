"""The counts ARCHITECTURE.md closes with, for any checkout: strategy-name checks outside strategies/,
import cycles among transferlab's modules, and the longest functions.

Usage: python scripts/architecture_counts.py [CHECKOUT]   (default: this one)

- A strategy-name check is a line of src/transferlab/**/*.py outside strategies/ where a strategy name
  literal is compared (``== "snt"``, ``!= 'extract'``), tested against a strategy value
  (``strategy in ("extract", ...)``), or a module-level table of strategy names is declared
  (``X_STRATEGIES = (``, ``STRATEGY_X = {``). Same pattern as ``grep -E`` in the issue-18 note.
- Import cycles: strongly connected groups of the module graph, once with module-level imports only and
  once with every import (function-level ones included). A module's own ancestors (its packages, always
  imported first) are not edges; ``from pkg import submodule`` is an edge to the submodule.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

NAMES = "(scratch|augment|extract|finetune|snt|siamese)"
CHECK = re.compile(
    rf"((==|!=) *[\"']{NAMES}[\"'])|(strateg[]a-z_.\"'[()]* *(not in|in) *\(?[\"']{NAMES}[\"'])"
    r"|(^[A-Z_]+_STRATEGIES *= *\(\s*[\"'])|(^STRATEGY_[A-Z]+ *= *[({]\s*[\"'])"
)


def strategy_checks(src: Path) -> list[str]:
    out = []
    for path in sorted(src.rglob("*.py")):
        if "strategies" in path.relative_to(src).parts:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if CHECK.search(line):
                out.append(f"{path.relative_to(src.parent)}:{number}: {line.strip()}")
    return out


def _modules(src: Path) -> dict[str, Path]:
    modules = {}
    for path in src.rglob("*.py"):
        name = ".".join(path.relative_to(src.parent).with_suffix("").parts)
        modules[name.removesuffix(".__init__")] = path
    return modules


def _targets(node: ast.AST, module: str, package: bool, modules: dict) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        parts = module.split(".") if package else module.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join(parts + ([base] if base else []))
    submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules]
    return submodules or [base]


def import_graphs(src: Path) -> dict[str, dict[str, set[str]]]:
    modules = _modules(src)
    graphs: dict[str, dict[str, set[str]]] = {"module-level": {}, "all": {}}
    for name, path in modules.items():
        tree, package = ast.parse(path.read_text()), path.name == "__init__.py"
        for kind, nodes in (("module-level", tree.body), ("all", list(ast.walk(tree)))):
            graphs[kind][name] = {
                t
                for node in nodes
                for t in _targets(node, name, package, modules)
                if t in modules and t != name and not name.startswith(t + ".")
            }
    return graphs


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    sys.setrecursionlimit(10_000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def longest_functions(src: Path, n: int = 6) -> list[tuple[int, str]]:
    found = []
    for path in src.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                where = f"{path.relative_to(src.parent)}:{node.lineno} {node.name}"
                found.append((node.end_lineno - node.lineno + 1, where))
    return sorted(found, reverse=True)[:n]


def main(root: Path) -> None:
    src = root / "src" / "transferlab"
    checks = strategy_checks(src)
    print(f"strategy-name checks outside strategies/: {len(checks)}")
    for line in checks:
        print("   ", line)
    for kind, graph in import_graphs(src).items():
        groups = cycles(graph)
        print(f"{kind} import cycles: {len(groups)}")
        for group in groups:
            print("   ", " <-> ".join(group))
    print("longest functions:")
    for length, where in longest_functions(src):
        print(f"   {length:4d} lines  {where}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parents[1]))
