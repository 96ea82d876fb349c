"""(a) The VGG16 study's head grid on cached Fashion-MNIST lite0 features: batched vs one by one.

Grid: 3 heads (fc1, fc2, fc3) x 2 activations (sigmoid, elu) x 3 learning rates (1e-2, 1e-3, 1e-4) x 4
sizes (100, 10, 1, 0.1 % of each class's training pool, the study's sizes) = 72 runs; 20 epochs, batch
50, Adam, uniform init; validation 10 % of the training images (fixed across sizes), test = the 10,000
official test images; EfficientNet-Lite0 (ImageNet) at 64 px, seed 0.

    one by one   ``transferlab.strategies.run(spec)`` per run, what the study engine did before batching
                 (reads its cached features, trains its head, scores it);
    batched      ``transferlab.strategies.run_batch(specs)``, what the study engine does now (one pass
                 per size: 18 heads train on the same mini-batches).
Both produce complete RunResults; the cache is filled first and not timed. Reported per size and in
total: seconds, the time ratio, and the test accuracy of both paths (mean over configurations and the
largest per-configuration difference).

The floor: the arithmetic and the optimizer traffic that any exact float32 method must do for the grid,
timed on this machine's best case in the same run: every matrix product at the measured float32 matmul
peak (forward, weight gradient and input gradient of each step; validation every epoch; the final
scoring), plus every Adam update at the rate of torch's fused Adam on one large tensor (it reads the
parameter, its gradient and two moments and writes three of them: memory-bound). One-by-one seconds /
floor seconds is the largest speedup any exact method could show here.

At 100 % one run trains 21,600 steps, so one by one takes minutes per configuration: ``--sample K`` times
only K of a size's 18 configurations one by one (spread over heads, activations and learning rates) and
extrapolates that size's one-by-one time as K's mean x 18; accuracies are then compared on those K.

    python benchmarks/heads_grid.py [--sizes 1,0.1,0.01,0.001] [--epochs 20] [--sample 100%:6] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import extract  # noqa: E402  (the benchmark scripts are plain modules next to this one)
import numpy as np

from transferlab.data.datasets import load_dataset
from transferlab.runs import RunSpec
from transferlab.strategies import run, run_batch
from transferlab.strategies.extract import _task_features

HEADS, ACTIVATIONS, LRS = ("fc1", "fc2", "fc3"), ("sigmoid", "elu"), (1e-2, 1e-3, 1e-4)
BASE = {
    "strategy": "extract",
    "dataset": "fashion-mnist",
    "backbone": "efficientnet_lite0.in1k",
    "input_size": 64,
    "batch_size": 50,
    "optimizer": "adam",
    "seed": 0,
}


def grid(size: float, epochs: int) -> list[RunSpec]:
    return [
        RunSpec(**BASE, size=size, epochs=epochs, head=head, activation=activation, lr=lr)
        for head in HEADS
        for activation in ACTIVATIONS
        for lr in LRS
    ]


def parse_sample(text: str) -> dict[float, int]:
    """'100%:6,10%:9' -> {1.0: 6, 0.1: 9}."""
    out = {}
    for part in filter(None, text.split(",")):
        size, count = part.split(":")
        out[float(size.rstrip("%")) / 100] = int(count)
    return out


def measure(sizes: list[float], epochs: int, sample: dict[float, int]) -> dict:
    data = load_dataset("fashion-mnist")
    started = time.perf_counter()
    for size in sizes:  # fill the feature cache (train subset, validation, test) before timing anything
        _task_features(grid(size, epochs)[0].resolved(), data, progress=False)
    rows, fill_seconds = [], time.perf_counter() - started
    for size in sizes:
        specs = grid(size, epochs)
        started = time.perf_counter()
        batched = run_batch(specs, data)
        batched_seconds = time.perf_counter() - started
        count = sample.get(size, len(specs))
        picked = np.linspace(0, len(specs) - 1, min(count, len(specs))).round().astype(int).tolist()
        started = time.perf_counter()
        single = {i: run(specs[i], data) for i in picked}
        single_seconds = (time.perf_counter() - started) / len(picked) * len(specs)
        failed = [i for i, r in enumerate(batched) if not r.ok] + [i for i, r in single.items() if not r.ok]
        if failed:
            raise SystemExit(f"size {size}: runs {sorted(set(failed))} failed: {batched[failed[0]].error}")
        differences = [abs(batched[i].test_accuracy - single[i].test_accuracy) for i in picked]
        best = max(batched, key=lambda r: r.val_accuracy).spec  # selected on validation, reported on test
        rows.append(
            {
                "size": size,
                "n_train": batched[0].n_train,
                "configs": len(specs),
                "one_by_one_timed": len(picked),
                "one_by_one_seconds": round(single_seconds, 2),
                "batched_seconds": round(batched_seconds, 2),
                "speedup": round(single_seconds / batched_seconds, 2),
                "batched_test_accuracy": round(statistics.mean(r.test_accuracy for r in batched), 4),
                "batched_test_accuracy_compared": round(
                    statistics.mean(batched[i].test_accuracy for i in picked), 4
                ),
                "one_by_one_test_accuracy": round(
                    statistics.mean(r.test_accuracy for r in single.values()), 4
                ),
                "max_abs_accuracy_difference": round(max(differences), 4),
                "best_val_config": f"{best['head']}/{best['activation']}/lr={best['lr']:g}",
            }
        )
        rows[-1]["n_val"], rows[-1]["n_test"] = batched[0].n_val, batched[0].n_test
    total_single = sum(r["one_by_one_seconds"] for r in rows)
    total_batched = sum(r["batched_seconds"] for r in rows)
    floor = exact_floor(rows, epochs)
    return {
        "epochs": epochs,
        "feature_cache_fill_seconds": round(fill_seconds, 1),
        "sizes": rows,
        "total_one_by_one_seconds": round(total_single, 1),
        "total_batched_seconds": round(total_batched, 1),
        "total_speedup": round(total_single / total_batched, 2),
        "floor": floor,
        "largest_possible_speedup": round(total_single / floor["seconds"], 2),
    }


def adam_seconds_per_parameter(parameters: int = 2_400_000, steps: int = 50) -> float:
    """Best observed seconds per parameter-step of torch's fused Adam (the batched pass's optimizer)."""
    import torch

    weight = torch.nn.Parameter(torch.zeros(parameters))
    weight.grad = torch.randn(parameters)
    try:
        optimizer = torch.optim.Adam([weight], lr=1e-3, fused=True)
    except RuntimeError:
        optimizer = torch.optim.Adam([weight], lr=1e-3)
    optimizer.step()  # creates the moments
    best = float("inf")
    for _ in range(steps):
        start = time.perf_counter()
        optimizer.step()
        best = min(best, time.perf_counter() - start)
    return best / parameters


def exact_floor(
    rows: list[dict], epochs: int, batch_size: int = 50, features: int = 1280, classes: int = 10
) -> dict:
    """Seconds that the grid's matrix products (at the measured matmul peak) and Adam updates (at fused
    Adam's measured rate) take at the very least; see the module docstring."""
    from transferlab.models.heads import FC_HIDDEN

    peak = extract.matmul_peak_gflops() * 1e9
    adam = adam_seconds_per_parameter()
    flops = updates = 0.0
    for row in rows:
        for head in HEADS:
            widths = [features, *FC_HIDDEN[head], classes]
            weights = sum(a * b for a, b in zip(widths, widths[1:], strict=False))
            params = weights + sum(widths[1:])
            steps = -(-row["n_train"] // batch_size) * epochs
            configs = len(ACTIVATIONS) * len(LRS)
            per_step = (
                2 * batch_size * (2 * weights + (weights - features * widths[1]))
            )  # fwd, dW, dX past layer 1
            evaluated = row["n_val"] * epochs + row["n_train"] + row["n_val"] + row["n_test"]
            flops += configs * (steps * per_step + 2 * weights * evaluated)
            updates += configs * steps * params
    seconds = flops / peak + updates * adam
    return {
        "matmul_peak_gflops": round(peak / 1e9, 1),
        "adam_ns_per_parameter": round(adam * 1e9, 3),
        "tflop": round(flops / 1e12, 2),
        "adam_parameter_updates": updates,
        "matmul_seconds": round(flops / peak, 1),
        "adam_seconds": round(updates * adam, 1),
        "seconds": round(seconds, 1),
    }


def print_table(result: dict) -> None:
    print(
        f"(a) 72-config head grid on cached Fashion-MNIST lite0 features, {result['epochs']} epochs, batch 50 "
        f"(cache filled first in {result['feature_cache_fill_seconds']} s, not timed)"
    )
    print(
        f"{'size':>6} {'n_train':>7} {'timed 1-by-1':>12} {'1-by-1 s':>9} {'batched s':>9} {'ratio':>6} "
        f"{'acc 1-by-1':>10} {'acc batched':>11} {'max |diff|':>10}  best on val (batched)"
    )
    for r in result["sizes"]:
        timed = f"{r['one_by_one_timed']}/{r['configs']}"
        print(
            f"{100 * r['size']:>5g}% {r['n_train']:>7} {timed:>12} {r['one_by_one_seconds']:>9.1f} "
            f"{r['batched_seconds']:>9.1f} {r['speedup']:>5.1f}x {r['one_by_one_test_accuracy']:>10.4f} "
            f"{r['batched_test_accuracy_compared']:>11.4f} {r['max_abs_accuracy_difference']:>10.4f}  "
            f"{r['best_val_config']}"
        )
    print(
        f" total {'':>7} {'':>12} {result['total_one_by_one_seconds']:>9.1f} {result['total_batched_seconds']:>9.1f} "
        f"{result['total_speedup']:>5.1f}x   (one-by-one seconds of sampled sizes are extrapolated)"
    )
    f = result["floor"]
    print(
        f"floor of any exact float32 method: {f['tflop']} TFLOP at the {f['matmul_peak_gflops']} GFLOP/s matmul peak "
        f"= {f['matmul_seconds']} s, + {f['adam_parameter_updates']:.3g} Adam updates at {f['adam_ns_per_parameter']} "
        f"ns = {f['adam_seconds']} s; {f['seconds']} s in all: one by one / floor = "
        f"{result['largest_possible_speedup']}x is the largest speedup possible here"
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", default="1,0.1,0.01,0.001", help="training fractions (default: the study's)"
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--sample", default="100%:6", help="SIZE%%:K pairs: time only K configs one by one")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    result = measure([float(s) for s in args.sizes.split(",")], args.epochs, parse_sample(args.sample))
    print(json.dumps(result, indent=1)) if args.json else print_table(result)
    return result


if __name__ == "__main__":
    main()
