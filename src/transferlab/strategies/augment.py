"""``augment``: the studies' data-augmentation baseline — ``scratch`` trained with random mirror,
Gaussian noise, random crop and a small affine on every training batch (``spec.augment`` picks the ops;
the CIFAR-domains study used ``mirror,noise``). It is the scratch training code; only the default of
``augment`` differs, so the two baselines differ in nothing else."""

from __future__ import annotations

from transferlab.strategies import scratch
from transferlab.strategies.base import Strategy

STRATEGY = Strategy(
    name="augment",
    summary="scratch + training augmentation (mirror, Gaussian noise, random crop, small affine)",
    fit_evaluate=scratch.fit_evaluate,
    heads=("linear",),
    default_backbone="cifar_cnn",
)
