"""Run every benchmark, one after the other, each printing its table (not part of CI):

    (a) heads_grid.py        72-config head grid on cached features, batched vs one by one
    (b) extract.py           extraction images/s vs a plain timm loop; GFLOP/s vs the measured matmul peak
    (c) quickstart_cache.py  the quickstart study, cold vs warm feature cache
    (d) linear_heads.py      logreg/svm heads vs scikit-learn on the same features

    python benchmarks/run_all.py [--only a,b,c,d] [--quick] [--json-out results.json]

Needs Fashion-MNIST and the efficientnet-lite0 weights installed. Every benchmark uses the user's feature
cache (TRANSFERLAB_CACHE) except (c), which starts from an empty one; (a) and (d) fill what they need
first, untimed. ``--quick`` runs tiny settings (a few minutes in all) to check that everything works; its
figures mean nothing. A full run takes about 25 minutes on an idle 2-core machine, most of it in (a) (see
benchmarks/README.md). Run it on an idle machine: other processes inflate every timing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import extract  # noqa: E402  (the benchmark scripts are plain modules next to this one)
import heads_grid  # noqa: E402
import linear_heads  # noqa: E402
import quickstart_cache  # noqa: E402

QUICK_SPEC = """
name = "quick"
description = "run_all --quick: a small study on digits with extract and scratch runs"
[base]
dataset = "digits"
per_class = [10, 40]
val_size = 10
[[runs]]
strategy = "extract"
backbone = "efficientnet_lite0.in1k"
input_size = 32
head = ["logreg", "fc2"]
[[runs]]
strategy = "scratch"
backbone = "shallow_cnn"
input_size = 16
epochs = 3
"""


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="a,b,c,d", help="which benchmarks, e.g. a,c")
    parser.add_argument(
        "--quick", action="store_true", help="tiny settings: checks the scripts, not the figures"
    )
    parser.add_argument("--json-out", type=Path, help="also write every result as JSON to this file")
    args = parser.parse_args(argv)
    info = machine()
    print(
        f"machine: {info['cpu']}, {info['cores']} cores, {info['torch_threads']} torch threads, torch "
        f"{info['torch']}, {info['date']} UTC{' (--quick: figures mean nothing)' if args.quick else ''}\n"
    )
    results: dict = {"machine": info, "quick": args.quick}
    started = time.perf_counter()
    with_spec = None
    for name in args.only.split(","):
        begun = time.perf_counter()
        if name == "a":
            results["a"] = heads_grid.main(["--sizes", "0.01,0.001", "--epochs", "2"] if args.quick else [])
        elif name == "b":
            results["b"] = extract.main(
                ["--images", "512", "--batch-sizes", "32"] if args.quick else ["--repeats", "2"]
            )
        elif name == "c":
            if args.quick:
                with_spec = Path(os.environ.get("TMPDIR", "/tmp")) / f"transferlab-quick-{os.getpid()}.toml"
                with_spec.write_text(QUICK_SPEC)
            results["c"] = quickstart_cache.main(["--spec", str(with_spec)] if args.quick else [])
        elif name == "d":
            results["d"] = linear_heads.main(["--quick"] if args.quick else [])
        else:
            raise SystemExit(f"unknown benchmark {name!r}; valid: a, b, c, d")
        print(f"[{name} took {time.perf_counter() - begun:.0f} s]\n")
    if with_spec is not None:
        with_spec.unlink(missing_ok=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    print(f"all benchmarks: {results['seconds']:.0f} s")
    if args.json_out:
        args.json_out.write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
