"""The learning-rate schedule as a pure function of the step (nothing to save but the step).

The optimizer is never rebuilt at a milestone: only ``param_group["lr"]`` changes, so Adam's
moments carry over (the released trainer re-created Adam at each lr step, resetting them).
"""
from __future__ import annotations


def lr_at(step: int, optim_cfg) -> float:
    """Learning rate for update ``step`` (0-based): ``lr`` times the gamma of every milestone
    ``<= step``, times a linear warm-up ``(step + 1) / warmup`` during the first ``warmup`` steps."""
    lr = float(optim_cfg.lr)
    gammas = optim_cfg.gamma if isinstance(optim_cfg.gamma, list) else [optim_cfg.gamma] * len(optim_cfg.milestones)
    for m, g in zip(optim_cfg.milestones, gammas):
        if step >= m:
            lr *= float(g)
    if optim_cfg.warmup and step < optim_cfg.warmup:
        lr *= (step + 1) / optim_cfg.warmup
    return lr


def set_lr(optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr


__all__ = ["lr_at", "set_lr"]
