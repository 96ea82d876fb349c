"""``transferlab advise``: rank candidate sources for a target by transferability scores on cached
features (no fine-tuning), place the task in the size-similarity matrix and recommend a run.

Claim: the ranking costs one forward pass of each candidate over the target's labelled images (plus,
for ``@source``/``@DATASET`` candidates, training their source model once; it is cached by content).
Evidence: :func:`validate` compares a ranking with a finished study's real accuracies (Kendall tau) and
``benchmarks/advise_fashion.py`` measures it on Fashion-MNIST (figures in benchmarks/README.md).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from transferlab.advise.scores import SCORES, score_all
from transferlab.advise.similarity import Placement, place, similarity
from transferlab.advise.sources import Source, SourceSettings, default_candidates, resolve_source
from transferlab.catalog import get_strategy
from transferlab.data.imageset import ImageSet
from transferlab.errors import TransferlabError

RANK_BY = "logme"  # You et al. 2021 report it the most reliable of these scores; every score is shown
VALIDATION_FILE = "advise_validation.json"


@dataclass
class CandidateAdvice:
    """One candidate's scores (see advise/scores.py), similarity to its source images and placement."""

    name: str
    kind: str
    scores: dict[str, float | None]
    similarity: dict[str, float] | None
    placement: Placement
    reference: str  # what the source images are (or why there are none)
    feature_dim: int
    seconds: float
    source_record: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["placement"] = {
            **asdict(self.placement),
            "label": self.placement.label,
            "reason": self.placement.reason,
        }
        return out


@dataclass
class Advice:
    """The ranked candidates (best first by ``rank_by``) and the recommended run."""

    dataset: str
    task: dict  # classes, training images, per class, seed
    rank_by: str
    candidates: list[CandidateAdvice]
    recommendation: dict

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "task": self.task,
            "rank_by": self.rank_by,
            "candidates": [c.to_dict() for c in self.candidates],
            "recommendation": self.recommendation,
        }


def source_probabilities(backbone, features: np.ndarray) -> np.ndarray:
    """The backbone's own classifier (ImageNet's 1,000 classes, or a source model's classes) applied to
    its pooled features (N, D) -> softmax probabilities (N, Z), in eval mode."""
    was_training = backbone.training
    backbone.eval()
    try:
        with torch.inference_mode():
            logits = backbone.classifier(torch.from_numpy(features).to(next(backbone.parameters()).device))
            return torch.softmax(logits.double(), 1).cpu().numpy()
    finally:
        backbone.train(was_training)


def assess(
    source: Source,
    data: ImageSet,
    train_indices: np.ndarray,
    labels: np.ndarray,
    per_class: float,
    settings: SourceSettings,
    with_similarity: bool = True,
) -> CandidateAdvice:
    """Scores of one resolved candidate on the target images ``data.images[train_indices]``."""
    from transferlab.features import cached_features

    started = time.perf_counter()
    side = settings.side(source.kind)
    features = cached_features(data, train_indices, source.backbone, size=side, device="cpu")
    probs = source_probabilities(source.backbone, features)
    scores = score_all(labels, features=features, source_probs=probs)
    sim = None
    if with_similarity and source.reference is not None:
        reference = cached_features(source.reference, None, source.backbone, size=side, device="cpu")
        sim = similarity(reference, features, seed=settings.seed)
    placement = place(per_class, None if sim is None else sim["domain_accuracy"])
    return CandidateAdvice(
        source.name,
        source.kind,
        scores,
        sim,
        placement,
        source.reference_note,
        int(features.shape[1]),
        time.perf_counter() - started,
        source.record,
    )


def recommend(candidate: CandidateAdvice, units: list[str], input_size: int | None) -> dict:
    """A run (RunSpec fields) for the candidate's quadrant, and why. ``units``: its freezable units
    without the classifier. Seed 002's decision map: Q4 (small, similar) keep the whole base frozen and
    train a classifier on its features; Q3 (small, different) train the upper half (deeper than Q2,
    with augmentation); Q2 (large, similar) train the top third; Q1 (large, different) train everything
    from the pretrained start. A source model trained on other classes transfers by snt; random init
    means no transfer, so scratch (with augmentation when small)."""
    q = candidate.placement.quadrant
    n = len(units)
    frozen = {4: n, 3: n // 2, 2: round(2 * n / 3), 1: 0}[q]
    run: dict = {"backbone": candidate.name.split("@")[0]}
    if input_size:
        run["input_size"] = input_size
    # Augmentation where the network trains on images (snt, finetune), not on cached features (extract).
    augment = {"augment": "mirror,noise"} if q == 3 else {}
    if candidate.kind == "random":
        run.update(strategy="augment" if candidate.placement.small else "scratch")
        why = "the best-scoring candidate is random init: nothing to transfer, train from scratch"
    elif candidate.kind == "source":
        run.update(strategy="snt", transfer=n, frozen=frozen, **augment)
        why = f"transfer all {n} units of the source model trained on the other classes, freeze the first {frozen}"
    elif q == 4:
        run.update(strategy="extract", head="logreg")
        why = (
            "frozen base as a feature extractor + a logistic-regression head: few labels, and features that "
            "already fit (seed 002, quadrant 4)"
        )
    else:
        run.update(strategy="finetune", frozen=frozen, head="linear", **augment)
        trained = ", ".join(units[frozen:]) or "none"
        why = (
            f"fine-tune with units 1..{frozen} of {n} frozen (trained: {trained}) + a new linear head "
            f"(seed 002, quadrant {q})"
        )
    if "augment" in run:
        why += "; with augmentation (mirror, noise) against over-fitting on few labels"
    return {"candidate": candidate.name, "quadrant": q, "run": run, "why": why}


def advise(
    dataset: str | ImageSet,
    *,
    candidates: list[str] | None = None,
    target: str | None = None,
    source: str | None = None,
    size: float | None = None,
    per_class: int | None = None,
    val_size: float | int = 0.1,
    settings: SourceSettings | None = None,
    with_similarity: bool = True,
    progress: bool = False,
) -> Advice:
    """Rank ``candidates`` (default: every pretrained backbone present + ``cifar_cnn@random``) for the
    target: ``dataset``'s ``target`` classes (or all), its training subset ``size``/``per_class``
    (default all) drawn with ``settings.seed``."""
    from transferlab.data.datasets import load_dataset
    from transferlab.data.splits import class_split, make_task
    from transferlab.strategies.base import HALVES_SEED

    settings = settings or SourceSettings()
    data = dataset if isinstance(dataset, ImageSet) else load_dataset(dataset)
    candidates = candidates or default_candidates()
    if len(set(candidates)) != len(candidates):
        raise TransferlabError(f"candidates are listed twice: {', '.join(candidates)}")
    split = class_split(data, source, target, seed=HALVES_SEED) if (source or target) else None
    target_classes = None if split is None else split.target
    if size is None and per_class is None:
        size = 1.0
    task = make_task(
        data, target_classes, size=size, per_class=per_class, val_size=val_size, seed=settings.seed
    )
    labels = task.labels(data, "train")
    per_class_count = len(task.train) / len(task.classes)
    assessed, units = [], {}
    for name in candidates:
        resolved = resolve_source(name, data, None if split is None else split.source, settings, progress)
        units[name] = list(resolved.backbone.units)
        assessed.append(
            assess(resolved, data, task.train, labels, per_class_count, settings, with_similarity)
        )
    ranked = sorted(assessed, key=lambda c: -c.scores[RANK_BY])
    usable = [c for c in ranked if c.kind != "dataset"]
    recommendation = (
        recommend(usable[0], units[usable[0].name], settings.side(usable[0].kind))
        if usable
        else {
            "candidate": None,
            "run": None,
            "why": "every candidate was trained on another dataset; no "
            "strategy transfers from another dataset yet (use snt within one dataset)",
        }
    )
    if recommendation["run"] is not None:  # the same task: the recommended run learns the same classes
        recommendation["run"].update({k: v for k, v in (("target", target), ("source", source)) if v})
    task_info = {
        "classes": list(task.class_names),
        "n_train": len(task.train),
        "per_class": per_class_count,
        "size": task.size_label,
        "seed": settings.seed,
        "input_size": settings.input_size,
        "trained_input_size": settings.trained_input_size,
    }
    return Advice(data.name, task_info, RANK_BY, ranked, recommendation)


# ---------------------------------------------------------------------------------------- validate


def _candidate_of(spec: dict) -> str | None:
    """The candidate a study run measures: extract/finetune -> its pretrained backbone; snt with
    transfer > 0 -> 'NAME@source'; None for the rest. Training from scratch (scratch, augment, snt base)
    is not mapped to 'NAME@random': that candidate's score rates random *features*, while a scratch run's
    accuracy is what training the whole network learns, so the two would not measure the same thing."""
    strategy = get_strategy(spec.get("strategy"))
    if strategy.needs_pretrained:
        return spec["backbone"]
    if strategy.transfer_from == "source-model" and strategy.transfers(spec):
        return f"{spec['backbone']}@source"
    return None


def kendall_tau(scores: list[float], accuracies: list[float]) -> float | None:
    """Kendall's tau-b between two rankings; None when fewer than 2 pairs can be compared."""
    from scipy.stats import kendalltau

    if len(scores) < 2:
        return None
    tau = kendalltau(scores, accuracies).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def validate(study_dir: str | Path, *, size_label: str | None = None, progress: bool = False) -> dict:
    """Compare the advice ranking with the real test accuracies of a finished study at one training size
    (default: its smallest). For each candidate the study ran, the configuration chosen on validation is
    reported with test accuracy (mean ± std over its repeats); scores are computed on that size's seed-0
    training subset. Returns (and writes to DIR/advise_validation.json) the table and Kendall's tau
    between each score and the mean test accuracy."""
    from transferlab import paths
    from transferlab.data.datasets import load_dataset
    from transferlab.report.aggregate import best_by_validation, load_study
    from transferlab.runs import RunSpec
    from transferlab.strategies.base import sides
    from transferlab.study.export import open_study

    with open_study(study_dir) as store:
        study = load_study(store)
        specs = {run["run_id"]: run["spec"] for run in store.runs("done")}
    if study.n_usable == 0:
        raise TransferlabError(
            f"study {str(study_dir)!r} has no finished runs with a test accuracy to validate against"
        )
    tasks = []
    for task in study.tasks:
        sizes = [s for s in task.sizes if s.label == size_label] if size_label else task.sizes[:1]
        if not sizes:
            raise TransferlabError(
                f"size {size_label!r} is not in the study; valid: {', '.join(s.label for s in task.sizes)}"
            )
        size = sizes[0]
        by_candidate: dict[str, list] = {}
        for cell in task.at(size):
            name = _candidate_of(specs[cell.run_ids[0]])
            if name is not None:
                by_candidate.setdefault(name, []).append(cell)
        rows = []
        for name, cells in sorted(by_candidate.items()):
            best = best_by_validation(cells) or cells[0]
            spec = specs[best.run_ids[0]]
            rows.append((name, best, spec))
        if not rows:
            continue
        spec0 = rows[0][2]
        data = load_dataset(spec0["dataset"])
        table = []
        for name, cell, spec in rows:
            settings = SourceSettings(
                input_size=spec.get("input_size"),
                trained_input_size=spec.get("input_size"),
                seed=0,
                run_spec=spec if name.endswith("@source") else None,
            )
            target, source = spec.get("target"), spec.get("source")
            if name.endswith("@source") and target is None and source is None:
                # snt with random halves: the same halves (and direction) the run learned.
                halves = sides(RunSpec.from_dict(spec), data)
                target, source = ",".join(map(str, halves.target)), ",".join(map(str, halves.source))
            advice = advise(
                data,
                candidates=[name],
                target=target,
                source=source,
                size=spec.get("size"),
                per_class=spec.get("per_class"),
                val_size=spec.get("val_size", 0.1),
                settings=settings,
                with_similarity=False,
                progress=progress,
            )
            scores = advice.candidates[0].scores
            table.append(
                {
                    "candidate": name,
                    **scores,
                    "accuracy_mean": cell.test.mean,
                    "accuracy_std": cell.test.std,
                    "n": cell.test.n,
                    "configuration": task.describe(cell.config),
                }
            )
        taus = {}
        for score in SCORES:
            pairs = [(r[score], r["accuracy_mean"]) for r in table if r[score] is not None]
            taus[score] = kendall_tau([p[0] for p in pairs], [p[1] for p in pairs])
        tasks.append({"task": task.label, "size": size.label, "rows": table, "kendall_tau": taus})
    if not tasks:
        raise TransferlabError(
            "the study has no extract, finetune or snt (transfer > 0) runs: no transfer candidate to validate"
        )
    result = {"study": str(study_dir), "rank_by": RANK_BY, "tasks": tasks}
    paths.atomic_write(
        Path(study_dir) / VALIDATION_FILE, lambda f: f.write(json.dumps(result, indent=1).encode())
    )
    return result
