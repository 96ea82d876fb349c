"""The report's summary in words: DESIGN.md's questions answered with the study's numbers.

Every configuration named is the one chosen on validation accuracy; every accuracy quoted is test
accuracy, mean ± std over the repeats with n. Questions the study's runs cannot answer say so.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from transferlab.report import headline
from transferlab.report.aggregate import (
    Cell,
    Gain,
    SizeKey,
    StudyData,
    Task,
    best_by_validation,
    depth_sweeps,
)
from transferlab.report.headline import verdict


@dataclass
class Section:
    title: str
    points: list[str]


ANSWER = "Answer"


def summarize(study: StudyData) -> list[Section]:
    """The answer first (per task and size: transfer against the baselines, in plain words), then a
    section on the study's state, then one per task with the details."""
    answer = []
    for task in study.tasks:
        task_answers = headline.answers(task)
        answer += [headline.overview(task, task_answers), *(headline.sentence(task, a) for a in task_answers)]
    if not answer:
        answer = ["No finished run has a test accuracy yet: there is no answer to give (see Status)."]
    sections = [Section(ANSWER, answer), Section("Status", _status(study))]
    for task in study.tasks:
        points = [*_budgets(task), *_best_strategy(task), *_depths(task), *_trend(task), *_sources(task)]
        sections.append(Section(f"{task.label} ({task.n_classes} classes, chance {task.chance:.2f})", points))
    return sections


def to_markdown(sections: list[Section]) -> str:
    lines = []
    for section in sections:
        lines += [f"## {section.title}", ""] + [f"- {p}" for p in section.points] + [""]
    return "\n".join(lines)


def _status(study: StudyData) -> list[str]:
    counts = study.counts
    if study.n_runs == 0:
        return ["This study has no runs yet: nothing to report. Run `transferlab study SPEC.toml --dir DIR`."]
    points = [
        f"{counts['done']} of {study.n_runs} runs done, {counts['failed']} failed, {counts['running']} "
        f"running, {counts['pending']} pending; {study.n_usable} finished runs have a test accuracy."
    ]
    if counts["pending"] or counts["running"]:
        points.append(
            "The study is not finished: every number below may change as the remaining runs finish."
        )
    if study.failed:
        count = (
            f"{len(study.failed)} run failed or left"
            if len(study.failed) == 1
            else f"{len(study.failed)} runs failed or left"
        )
        points.append(f"{count} no usable result; the reasons are listed under 'Failed runs'.")
    if study.n_usable == 0:
        points.append(
            "No run has finished with a test accuracy, so no accuracy, gain or figure can be shown."
        )
    else:
        points.append(
            "Configurations are chosen on mean validation accuracy; accuracies quoted are test "
            "accuracy, mean ± std over repeats (seeds, and both transfer directions when run) with n."
        )
    return points


def _named(task: Task, cell: Cell) -> str:
    return f"{task.describe(cell.config)}: {cell.test.text()}"


def _budgets(task: Task) -> list[str]:
    """Whether the compared arms had equal tuning budgets: a point naming, for each size where transfer,
    the baseline and augmentation were chosen from different numbers of configurations, how many each had
    (the arm with more had more chances at a lucky validation score); nothing when they were equal."""
    items = []
    for size in task.sizes:
        choices = {role: task.choice(size, role=role) for role in ("transfer", "baseline", "augmentation")}
        present = {role: choice for role, choice in choices.items() if choice is not None}
        if choices["transfer"] is not None and len({c.n_configs for c in present.values()}) > 1:
            items.append(
                (size, ", ".join(f"{role} from {choice.text()}" for role, choice in present.items()))
            )
    if not items:
        return []
    return [
        f"Unequal tuning budgets: chosen on validation, {_ranges(items)}. Part of a gain may come from the "
        "larger search (and a lucky validation score among more tries) rather than from the arm itself; "
        "give each arm the same number of trials (e.g. the same lr grid) for a fair verdict."
    ]


def _ranges(items: list[tuple[SizeKey, str]]) -> str:
    """'a at 1%–10%; b at 100%': consecutive sizes with the same answer joined."""
    groups: list[tuple[str, list[SizeKey]]] = []
    for size, answer in items:
        if groups and groups[-1][0] == answer:
            groups[-1][1].append(size)
        else:
            groups.append((answer, [size]))
    parts = []
    for answer, sizes in groups:
        span = sizes[0].label if len(sizes) == 1 else f"{sizes[0].label}–{sizes[-1].label}"
        parts.append(f"{answer} at {span}")
    return "; ".join(parts)


def _best_strategy(task: Task) -> list[str]:
    """Question 2 (strategy): the configuration chosen on validation at each size."""
    items = []
    for size in task.sizes:
        cell = task.best(size)
        if cell is not None:
            items.append((size, task.describe(cell.config, full=False)))
    if not items:
        return ["No finished run recorded a validation accuracy, so no configuration can be chosen."]
    return [f"Best on validation: {_ranges(items)}."]


def _depths(task: Task) -> list[str]:
    """Question 2 (depth): how many units to transfer / freeze at each size, and the largest gain."""
    points = []
    for sweep in depth_sweeps(task):
        for name, cells in sweep.panels.items():
            items, best_gain = [], None
            for size in sweep.sizes:
                at_size = {c: d for (d, s), c in cells.items() if s == size}
                cell = best_by_validation(at_size)
                if cell is None:
                    continue
                depth = at_size[cell]
                items.append((size, str(depth)))
                gain = sweep.gain(cell)
                if gain is not None and (best_gain is None or gain.absolute > best_gain[0].absolute):
                    best_gain = (gain, depth, size)
            if not items:
                continue
            text = f"{sweep.title}, {name}: {sweep.depth_label} chosen on validation: {_ranges(items)}"
            if best_gain is not None:
                gain, depth, size = best_gain
                text += (
                    f"; the largest gain over the reference among these choices is {gain.text()} "
                    f"({depth} units at {task.size_text(size)})"
                )
            points.append(text + ".")
    return points


def _trend(task: Task) -> list[str]:
    """Question 3: how the gain moves with size, and how many labels the baseline needs to match transfer."""
    pairs = [
        (s, t, b)
        for s in task.sizes
        if (t := task.best(s, role="transfer")) and (b := task.best(s, role="baseline"))
    ]
    points = []
    if len(task.sizes) == 1:
        points.append(
            f"Only one training size ({task.size_text(task.sizes[0])}) has finished runs: no trend over "
            "size can be given yet."
        )
    if len(pairs) >= 2:
        (s0, t0, b0), (s1, t1, b1) = pairs[0], pairs[-1]
        g0, g1 = Gain.between(t0.test, b0.test), Gain.between(t1.test, b1.test)
        points.append(
            f"The gain of transfer over the baseline goes from {g0.absolute:+.3f} ({verdict(g0)}) at "
            f"{task.size_text(s0)} to {g1.absolute:+.3f} ({verdict(g1)}) at {task.size_text(s1)}."
        )
    smallest = next((s for s in task.sizes if task.best(s, role="transfer")), None)
    baselines = [(s, b) for s in task.sizes if (b := task.best(s, role="baseline"))]
    if smallest is not None and baselines:
        transfer = task.best(smallest, role="transfer")
        target, images = transfer.test.mean, f"{task.n_train[smallest]:,} images"
        same = next((b for s, b in baselines if s == smallest), None)
        matched = next(((s, b) for s, b in baselines if b.test.mean >= target), None)
        if same is not None and same.test.mean >= target:
            points.append(
                f"Transfer with {images} ({target:.3f}) does not beat the baseline at the same size "
                f"({same.test.mean:.3f}): no labels are saved by transferring there."
            )
        elif matched is None:
            top_size, top = max(baselines, key=lambda item: item[1].test.mean)
            points.append(
                f"Transfer with {images} ({target:.3f}) is not matched by the baseline at any tested "
                f"size (its best: {top.test.mean:.3f} with {task.n_train[top_size]:,} images)."
            )
        else:
            size, cell = matched
            ratio = task.n_train[size] / max(task.n_train[smallest], 1)
            caveat = ""
            if same is not None and verdict(Gain.between(transfer.test, same.test)) != "better":
                caveat = f" (by the means: at {images} transfer's lead over the baseline is not detectable)"
            points.append(
                f"Transfer with {images} ({target:.3f}) is first matched by the baseline at "
                f"{task.n_train[size]:,} images ({cell.test.mean:.3f}), {ratio:.3g}× as many labels"
                f"{caveat}."
            )
    return points


def _sources(task: Task) -> list[str]:
    """Question 4: which source (backbone or source classes) transfers best, by mean gain over sizes."""
    by_source: dict[tuple, list[Cell]] = defaultdict(list)
    for cell in task.cells:
        if cell.config.role == "transfer":
            by_source[(cell.config.strategy, cell.config.get("backbone"), cell.config.get("source"))].append(
                cell
            )
    if len(by_source) < 2:
        return []
    ranked = []
    for (strategy, backbone, source), cells in by_source.items():
        gains = []
        for size in task.sizes:
            chosen = best_by_validation(c for c in cells if c.size == size)
            reference = task.best(size, role="baseline")
            if chosen and reference:
                gains.append(Gain.between(chosen.test, reference.test).absolute)
        if gains:
            name = f"{strategy} from {backbone}" + (f" (source classes {source})" if source else "")
            ranked.append(
                (sum(gains) / len(gains), name, f"{len(gains)} size{'s' if len(gains) > 1 else ''}")
            )
    if not ranked:
        return ["No baseline runs: the sources cannot be ranked by their gain."]
    ranked.sort(reverse=True)
    listing = "; ".join(f"{name} {gain:+.3f} ({sizes})" for gain, name, sizes in ranked)
    return [
        f"Sources ranked by mean gain over the baseline across sizes: {listing}. Transferability scores "
        "that rank sources before training: `transferlab advise`."
    ]
