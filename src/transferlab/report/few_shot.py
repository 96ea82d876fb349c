"""Every few-shot method side by side on the same tasks (issue 20): the Siamese network (its configuration
chosen on validation, never on test) and the baselines each siamese run scores on exactly its tasks.

:func:`method_table` reads stored runs (``Store.runs()`` dicts) and gives one row per protocol x method:
accuracy over all tasks of the chosen configuration's repeats pooled (tasks are independent draws, so the
Wilson interval is over their total), the mean and std over repeats, for one-shot and 5-shot, and the
method's one-shot accuracy on the held-out validation classes when the runs had them. The recommendation
per protocol reads validation only (:func:`_recommend`); test is read only for the table.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass

from transferlab.siamese import wilson_interval

# (label, one-shot metric prefix, 5-shot metric prefix or None, validation metric prefix or None)
METHODS = (
    ("Siamese (chosen on validation)", "one_shot", "siamese_5shot", "val_one_shot"),
    ("Siamese before refit (fit classes only)", "one_shot_before_refit", None, None),
    ("1-NN, raw pixels (Koch)", "nn_pixels", "nn_pixels_5shot", "val_nn_pixels"),
    ("1-NN, features", "nn_features", "nn_features_5shot", "val_nn_features"),
    ("nearest class mean, features (protonet rule)", "protonet", "protonet_5shot", "val_protonet"),
    ("SimpleShot, features", "simpleshot", "simpleshot_5shot", "val_simpleshot"),
)
PROTOCOL_FIELDS = ("dataset", "source_dataset", "source", "target", "n_way", "input_size", "backbone")
TUNED_FIELDS = ("layer", "lr", "head", "hidden", "pairs", "weight_decay", "steps", "epochs")


@dataclass(frozen=True)
class Score:
    """Pooled accuracy over ``n`` tasks (``correct`` right) of ``repeats`` runs, Wilson (low, high), and the
    mean and std of the per-run accuracies."""

    correct: int
    n: int
    low: float
    high: float
    mean: float
    std: float | None
    repeats: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.n

    def text(self) -> str:
        spread = "" if self.std is None else f", {self.mean:.3f} ± {self.std:.3f} over {self.repeats}"
        return f"{self.accuracy:.3f} [{self.low:.3f}, {self.high:.3f}]{spread}"


def pooled(results: list[dict], prefix: str, tasks_key: str = "tasks") -> Score | None:
    """The pooled :class:`Score` of metric ``{prefix}_accuracy`` over ``results``; None if any lacks it.
    Every accuracy metric of a siamese run (one-shot, 5-shot, validation) is over its ``tasks`` tasks."""
    values = [r["metrics"].get(f"{prefix}_accuracy") for r in results]
    if not results or any(v is None for v in values):
        return None
    counts = [int(r["metrics"][tasks_key]) for r in results]
    correct = sum(round(v * n) for v, n in zip(values, counts, strict=True))
    low, high = wilson_interval(correct, sum(counts))
    std = statistics.stdev(values) if len(values) > 1 else None
    return Score(correct, sum(counts), low, high, statistics.mean(values), std, len(values))


def _key(spec: dict, names: tuple[str, ...]) -> tuple:
    return tuple((name, spec.get(name)) for name in names if spec.get(name) is not None)


def chosen_runs(runs: list[dict]) -> dict[tuple, tuple[tuple, list[dict], int]]:
    """protocol -> (the configuration chosen on mean validation accuracy over repeats, its finished runs'
    results, how many configurations competed). Ties: more repeats, then the configuration's sort order."""
    grouped: dict[tuple, dict[tuple, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run in runs:
        result = run.get("result")
        if run.get("status") != "done" or not result or result.get("status", "ok") != "ok":
            continue
        spec = result["spec"]
        if spec.get("strategy") != "siamese":
            continue
        grouped[_key(spec, PROTOCOL_FIELDS)][_key(spec, TUNED_FIELDS)].append(result)
    out = {}
    for protocol, configs in grouped.items():
        scored = [(c, rs) for c, rs in configs.items() if all(r.get("val_accuracy") is not None for r in rs)]
        if not scored:
            continue
        config, results = min(
            scored,
            key=lambda item: (
                -statistics.mean(r["val_accuracy"] for r in item[1]),
                -len(item[1]),
                repr(item[0]),
            ),
        )
        out[protocol] = (config, sorted(results, key=lambda r: r["spec"]["seed"]), len(scored))
    return out


def method_table(runs: list[dict]) -> list[dict]:
    """One row per protocol x method: ``protocol``, ``chosen`` (configuration text, of how many),
    ``method``, ``one_shot`` / ``five_shot`` / ``validation`` (:class:`Score` or None), ``recommended``
    (see :func:`_recommend`)."""
    rows = []
    for protocol, (config, results, n_configs) in sorted(
        chosen_runs(runs).items(), key=lambda kv: repr(kv[0])
    ):
        name = ", ".join(f"{k}={v}" for k, v in protocol)
        chosen = f"{', '.join(f'{k}={v}' for k, v in config)} (best of {n_configs} on validation)"
        block = [
            {
                "protocol": name,
                "chosen": chosen,
                "method": label,
                "one_shot": pooled(results, one),
                "five_shot": pooled(results, five) if five else None,
                "validation": pooled(results, val) if val else None,
                "recommended": False,
            }
            for label, one, five, val in METHODS
        ]
        block = [row for row in block if row["one_shot"] is not None]
        _recommend(block)
        rows += block
    return rows


def _recommend(block: list[dict]) -> None:
    """Mark the recommended method of one protocol, on validation only: the best training-free method
    (1-NN, nearest mean, SimpleShot), unless the Siamese network's validation interval lies wholly above
    that method's. Why not simply the highest validation accuracy: the Siamese figure is the best of its
    configurations (an optimistic pick) and costs a training run, so it has to win clearly to earn its place."""
    siamese = next(
        (row for row in block if row["method"] == METHODS[0][0] and row["validation"] is not None), None
    )
    free = [row for row in block if row["method"] != METHODS[0][0] and row["validation"] is not None]
    if not free:
        if siamese is not None:
            siamese["recommended"] = True
        return
    best = max(free, key=lambda row: row["validation"].accuracy)
    clearly = siamese is not None and siamese["validation"].low > best["validation"].high
    (siamese if clearly else best)["recommended"] = True


def markdown(rows: list[dict]) -> str:
    """The table as markdown: accuracy [95% Wilson interval over pooled tasks], mean ± std over repeats."""
    lines = [
        "| protocol | method | 1-shot test | 5-shot test | 1-shot validation classes |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        cells = [
            row[k].text() if row[k] is not None else "-" for k in ("one_shot", "five_shot", "validation")
        ]
        mark = " **(recommended on validation)**" if row["recommended"] else ""
        lines.append(f"| {row['protocol']} | {row['method']}{mark} | {' | '.join(cells)} |")
    chosen = sorted({(row["protocol"], row["chosen"]) for row in rows})
    lines += ["", *(f"- {protocol}: Siamese configuration {text}" for protocol, text in chosen)]
    return "\n".join(lines)


def tables(runs: list[dict]) -> list:
    """The report's ``few_shot_methods`` table (empty list without siamese runs): flat CSV rows, displayed
    as accuracy [Wilson interval] per protocol x method."""
    from transferlab.report.tables import Column, Table

    rows = []
    for row in method_table(runs):
        flat = {
            "protocol": row["protocol"],
            "siamese_config": row["chosen"],
            "method": row["method"],
            "recommended_on_validation": row["recommended"],
        }
        for part in ("one_shot", "five_shot", "validation"):
            score = row[part]
            flat.update(
                {
                    f"{part}_accuracy": None if score is None else score.accuracy,
                    f"{part}_ci_low": None if score is None else score.low,
                    f"{part}_ci_high": None if score is None else score.high,
                    f"{part}_tasks": None if score is None else score.n,
                    f"{part}_std": None if score is None else score.std,
                }
            )
        flat["repeats"] = row["one_shot"].repeats
        rows.append(flat)
    if not rows:
        return []

    def cell(part: str):
        def render(r: dict) -> str:
            if r[f"{part}_accuracy"] is None:
                return "-"
            return f"{r[f'{part}_accuracy']:.3f} [{r[f'{part}_ci_low']:.3f}, {r[f'{part}_ci_high']:.3f}]"

        return render

    caption = (
        "Every few-shot method on the same test tasks of unseen classes: accuracy [95% Wilson interval over "
        "the pooled tasks of the repeats]; the Siamese configuration is chosen on one-shot tasks of held-out "
        "validation classes (or the training classes' validation pairs without them). Recommended: the best "
        "training-free method on validation, unless the Siamese network's validation interval lies wholly "
        "above it (test never chooses)."
    )
    display = [
        Column("protocol", lambda r: r["protocol"]),
        Column(
            "method", lambda r: r["method"] + (" (recommended)" if r["recommended_on_validation"] else "")
        ),
        Column("1-shot test", cell("one_shot")),
        Column("5-shot test", cell("five_shot")),
        Column("1-shot validation", cell("validation")),
        Column("repeats", lambda r: str(r["repeats"])),
    ]
    return [Table("few_shot_methods", caption, rows, display)]
