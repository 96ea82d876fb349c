"""``augment``: the studies' data-augmentation baseline — ``scratch`` trained with random mirror,
Gaussian noise, random crop and a small affine on every training batch (``spec.augment`` picks the ops;
the CIFAR-domains study used ``mirror,noise``). It is the scratch training code; only the default of
``augment`` differs, so the two baselines differ in nothing else."""

from __future__ import annotations

from transferlab.strategies.scratch import fit_evaluate

__all__ = ["fit_evaluate"]
