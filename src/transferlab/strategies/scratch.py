"""``scratch``: the studies' baseline. A registry backbone from random initialisation, trained on the
run's training subset with its own (re-sized) linear classifier."""

from __future__ import annotations

from transferlab.data.imageset import ImageSet
from transferlab.models.registry import create_backbone
from transferlab.runs import RunResult, RunSpec
from transferlab.strategies.base import (
    Fitted,
    fit_network,
    image_transform,
    network_result,
    resolve_device,
    target_task,
    train_config,
)
from transferlab.train import seeded


def fit_evaluate(
    spec: RunSpec, data: ImageSet, progress: bool = False, keep: Fitted | None = None
) -> RunResult:
    """Train ``spec.backbone`` from random init on the task (with ``spec.augment`` if any) and score it.
    ``keep``: a :class:`Fitted` that receives the trained ``model`` and the ``task`` (for ``transferlab fit``)."""
    device = resolve_device(spec.device)
    task = target_task(spec, data)
    with seeded(spec.seed):
        model = create_backbone(spec.backbone, pretrained=False, num_classes=task.num_classes).to(device)
    score = fit_network(model, task, train_config(spec, progress), image_transform(model, spec, device))
    if keep is not None:
        keep.model, keep.task = model, task.split
    return network_result(spec, task, score)
