"""The report's first screen: at each training size, the best transfer configuration against the best
baseline and the best augmentation configuration, the gain with its 95% interval in plain words, and what
to do.

Each arm is the configuration chosen on validation accuracy among that role's runs at that size (see
:mod:`transferlab.report.aggregate`); gains are differences of mean test accuracy with the 95%
interval of the difference (paired over the splits both arms share, Welch's otherwise). A verdict is "better" or "worse" only when that interval excludes 0, "no detectable difference"
when it covers 0, and "cannot tell" when an arm has a single run (no interval).
"""

from __future__ import annotations

from dataclasses import dataclass

from transferlab.report.aggregate import Cell, Choice, Gain, SizeKey, Task, strategy_costs

REFERENCES = ("baseline", "augmentation")
REFERENCE_NAMES = {"baseline": "training from scratch", "augmentation": "scratch with data augmentation"}


@dataclass(frozen=True)
class Comparison:
    """Transfer against one reference arm at one size; ``verdict`` is one of :data:`VERDICTS`."""

    reference: str  # "baseline" | "augmentation"
    choice: Choice
    gain: Gain
    verdict: str

    @property
    def cell(self) -> Cell:
        return self.choice.cell


VERDICTS = ("better", "worse", "no detectable difference", "cannot tell")


def verdict(gain: Gain) -> str:
    """'better' / 'worse' when the 95% interval of the gain excludes 0, 'no detectable difference' when it
    covers 0, 'cannot tell' without an interval (an arm with n = 1)."""
    if gain.ci_half is None:
        return "cannot tell"
    if gain.absolute - gain.ci_half > 0:
        return "better"
    if gain.absolute + gain.ci_half < 0:
        return "worse"
    return "no detectable difference"


def points(value: float) -> str:
    """A difference of accuracies (fractions) in percentage points: '+3.1 points'."""
    return f"{100 * value:+.1f} points"


def interval(gain: Gain) -> str:
    """'95% CI −5.4 to +11.6 points' or 'no CI (n = 1)'."""
    if gain.ci_half is None:
        return "no CI: an arm has a single run"
    low, high = 100 * (gain.absolute - gain.ci_half), 100 * (gain.absolute + gain.ci_half)
    return f"95% CI {low:+.1f} to {high:+.1f}" + (" (paired)" if gain.paired else " (Welch)")


@dataclass(frozen=True)
class SizeAnswer:
    """The answer at one size: the chosen arms, the comparisons, and the recommendation in a sentence."""

    size: SizeKey
    transfer: Choice | None
    references: dict[str, Choice]  # role -> choice, for the references with finished runs
    comparisons: list[Comparison]
    recommendation: str

    def comparison(self, reference: str) -> Comparison | None:
        return next((c for c in self.comparisons if c.reference == reference), None)


def answers(task: Task) -> list[SizeAnswer]:
    """One :class:`SizeAnswer` per size of the task (sizes with no chosen arm are left out)."""
    out = []
    for size in task.sizes:
        transfer = task.choice(size, role="transfer")
        references = {role: c for role in REFERENCES if (c := task.choice(size, role=role)) is not None}
        if transfer is None and not references:
            continue
        comparisons = []
        if transfer is not None:
            for role, choice in references.items():
                gain = Gain.between(transfer.cell.test, choice.cell.test)
                comparisons.append(Comparison(role, choice, gain, verdict(gain)))
        out.append(
            SizeAnswer(size, transfer, references, comparisons, _recommend(task, transfer, comparisons))
        )
    return out


def _recommend(task: Task, transfer: Choice | None, comparisons: list[Comparison]) -> str:
    if transfer is None:
        return "No transfer run finished at this size: nothing to compare."
    if not comparisons:
        return "No baseline or augmentation run finished at this size: transfer cannot be judged against one."
    best_transfer = task.describe(transfer.cell.config)
    verdicts = {c.verdict for c in comparisons}
    worse = [c for c in comparisons if c.verdict == "worse"]
    if worse:
        winner = max(worse, key=lambda c: c.cell.test.mean)
        return (
            f"Do not use transfer here: {task.describe(winner.cell.config)} ({REFERENCE_NAMES[winner.reference]}) "
            "is better."
        )
    if verdicts == {"better"}:
        return f"Use transfer ({best_transfer}): it beats every arm without transfer at this size."
    if "cannot tell" in verdicts:
        return (
            "Cannot recommend: an arm has a single run, so the gain has no confidence interval; run at least "
            "3 seeds (repeats = 3)."
        )
    tied = [transfer.cell] + [c.cell for c in comparisons if c.verdict == "no detectable difference"]
    widest = max(c.gain.ci_half for c in comparisons if c.gain.ci_half is not None)
    text = f"No detectable difference (95% CI up to ±{100 * widest:.1f} points; more seeds would narrow it)."
    costs = strategy_costs(task)
    strategies = list(dict.fromkeys(c.config.strategy for c in tied if c.config.strategy in costs))
    if len(strategies) >= 2:
        ranked = sorted(strategies, key=lambda s: costs[s].per_run.mean)
        listing = ", ".join(f"{s} {costs[s].per_run.mean:,.1f} s" for s in ranked)
        text += f" Choose on cost: {ranked[0]} is cheapest (seconds per run, mean over the study: {listing})."
    if "better" in verdicts:
        better = [REFERENCE_NAMES[c.reference] for c in comparisons if c.verdict == "better"]
        text = f"Transfer beats {' and '.join(better)}; against the rest: " + text[0].lower() + text[1:]
    return text


def sentence(task: Task, answer: SizeAnswer) -> str:
    """The answer at one size in plain words."""
    head = f"At {task.size_text(answer.size)}"
    if answer.transfer is None:
        others = "; ".join(
            f"{REFERENCE_NAMES[r]} ({task.describe(c.cell.config)}) scores {c.cell.test.text()}"
            for r, c in answer.references.items()
        )
        return f"{head}: no transfer run finished; {others}."
    cell = answer.transfer.cell
    text = f"{head}, the best transfer configuration ({task.describe(cell.config)}) scores {cell.test.text()}"
    parts = []
    for c in answer.comparisons:
        what = {
            "better": "transfer is better",
            "worse": "transfer is worse",
            "no detectable difference": "no detectable difference",
            "cannot tell": "cannot tell",
        }[c.verdict]
        parts.append(
            f"against {REFERENCE_NAMES[c.reference]} ({task.describe(c.cell.config)}, "
            f"{c.cell.test.text()}): {what}, {points(c.gain.absolute)} ({interval(c.gain)})"
        )
    missing = [REFERENCE_NAMES[r] for r in REFERENCES if r not in answer.references]
    parts += [f"no {name} runs to compare with" for name in missing]
    return f"{text}; " + "; ".join(parts) + ". " + answer.recommendation


def _verdict_ranges(task_answers: list[SizeAnswer], reference: str) -> str | None:
    """'better at 5/class–20/class; worse at 50/class' (sizes in order), None without a comparison."""
    groups: list[tuple[str, list[SizeKey]]] = []
    for answer in task_answers:
        c = answer.comparison(reference)
        if c is None:
            continue
        if groups and groups[-1][0] == c.verdict:
            groups[-1][1].append(answer.size)
        else:
            groups.append((c.verdict, [answer.size]))
    if not groups:
        return None
    return "; ".join(
        f"{name} at {sizes[0].label}" + (f"–{sizes[-1].label}" if len(sizes) > 1 else "")
        for name, sizes in groups
    )


def overview(task: Task, task_answers: list[SizeAnswer]) -> str:
    """One line over all sizes, in size order: where transfer beats training from scratch (and scratch with
    augmentation, when the study has it), ties with it, or loses."""
    scratch = _verdict_ranges(task_answers, "baseline")
    if scratch is None:
        return (
            f"{task.label}: transfer cannot be compared with training from scratch (no size has finished "
            "runs of both)."
        )
    text = f"{task.label}: transfer vs training from scratch — {scratch}"
    augmented = _verdict_ranges(task_answers, "augmentation")
    if augmented is not None:
        text += f"; vs scratch with augmentation — {augmented}"
    return text + "."
