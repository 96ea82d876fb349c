"""(c) The quickstart study with a cold and a warm feature cache.

    cold     an empty cache (a fresh TRANSFERLAB_CACHE) and a fresh study directory: every feature array
             is extracted, every run trained;
    warm     the cache the cold run filled, a fresh study directory: every run is trained again, every
             feature array is read from the cache;
    resume   the cold run's directory again: every run is already recorded, only the report is rebuilt.
Each is the CLI command a user types (``transferlab study SPEC --dir DIR --quiet``) in a subprocess, timed
wall-clock. The store's per-run timings split the time by strategy, so the table shows which part a
feature cache can speed up (extract runs; finetune runs, whose frozen units' maps it holds, see
strategies/prefix.py) and which it cannot (scratch and augment train a network on images, and pay the
same warm or cold).

    python benchmarks/quickstart_cache.py [--spec examples/quickstart.toml] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from transferlab.study.store import Store

ROOT = Path(__file__).resolve().parent.parent


def study(spec: Path, directory: Path, cache: Path) -> float:
    """Seconds for ``transferlab study`` (fails loudly if the study does)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "transferlab.cli", "study", str(spec), "--dir", str(directory), "--quiet"],
        capture_output=True,
        text=True,
        env={**os.environ, "TRANSFERLAB_CACHE": str(cache)},
    )
    if proc.returncode != 0:
        raise SystemExit(f"study failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return time.perf_counter() - started


def by_strategy(directory: Path) -> dict[str, dict[str, float]]:
    """strategy -> summed run seconds and feature seconds recorded in the store."""
    out: dict[str, dict[str, float]] = defaultdict(
        lambda: {"runs": 0, "run_seconds": 0.0, "features_seconds": 0.0}
    )
    with Store(directory) as store:
        for run in store.runs():
            row = out[run["spec"]["strategy"]]
            row["runs"] += 1
            row["run_seconds"] += (run["result"] or {}).get("total_seconds", 0.0)
            row["features_seconds"] += (run["result"] or {}).get("features_seconds", 0.0)
    return {k: {n: round(v, 2) for n, v in row.items()} for k, row in out.items()}


def measure(spec: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cold = study(spec, tmp / "cold", tmp / "cache")
        warm = study(spec, tmp / "warm", tmp / "cache")
        resume = study(spec, tmp / "cold", tmp / "cache")
        strategies = {"cold": by_strategy(tmp / "cold"), "warm": by_strategy(tmp / "warm")}
    extract_cold = strategies["cold"].get("extract", {}).get("run_seconds", 0.0)
    extract_warm = strategies["warm"].get("extract", {}).get("run_seconds", 0.0)
    return {
        "spec": str(spec),
        "cold_seconds": round(cold, 1),
        "warm_seconds": round(warm, 1),
        "resume_seconds": round(resume, 1),
        "warm_percent_of_cold": round(100 * warm / cold, 1),
        "extract_runs_warm_percent_of_cold": round(100 * extract_warm / extract_cold, 1)
        if extract_cold
        else None,
        "by_strategy": strategies,
    }


def print_table(result: dict) -> None:
    print(f"(c) {Path(result['spec']).name}: cold vs warm feature cache (wall-clock of `transferlab study`)")
    print(
        f"  cold {result['cold_seconds']:.1f} s | warm {result['warm_seconds']:.1f} s "
        f"({result['warm_percent_of_cold']:.1f}% of cold) | resume (all runs recorded) {result['resume_seconds']:.1f} s"
    )
    print(
        f"  {'strategy':<10} {'runs':>5} {'cold run s':>10} {'warm run s':>10} {'cold feature s':>14} {'warm feature s':>14}"
    )
    cold, warm = result["by_strategy"]["cold"], result["by_strategy"]["warm"]
    for name in cold:
        c, w = cold[name], warm.get(name, {})
        print(
            f"  {name:<10} {c['runs']:>5} {c['run_seconds']:>10.1f} {w.get('run_seconds', 0):>10.1f} "
            f"{c['features_seconds']:>14.1f} {w.get('features_seconds', 0):>14.1f}"
        )
    if result["extract_runs_warm_percent_of_cold"] is not None:
        print(f"  extract runs warm: {result['extract_runs_warm_percent_of_cold']:.1f}% of cold")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--spec", type=Path, default=ROOT / "examples" / "quickstart.toml")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = measure(args.spec)
    print(json.dumps(result, indent=1)) if args.json else print_table(result)
    return result


if __name__ == "__main__":
    main()
