"""The optimiser and learning-rate schedule both training stages use (METHOD §7)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.optim.lr_scheduler import LambdaLR

from sstl.config import OptimConfig


def build_optimizer(model: nn.Module, cfg: OptimConfig) -> torch.optim.SGD:
    """SGD with momentum and weight decay at the batch-scaled lr (``lr * batch / ref_batch``)."""
    return torch.optim.SGD(
        model.parameters(),
        lr=cfg.scaled_lr,
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
    )


def lr_factor(step: int, cfg: OptimConfig, steps_per_epoch: int) -> float:
    """Multiplier of the base lr after ``step`` steps: linear warm-up, then cosine or multistep."""
    total = cfg.epochs * steps_per_epoch
    warmup = round(cfg.warmup_epochs * steps_per_epoch)
    if step < warmup:
        return (step + 1) / warmup
    if cfg.schedule == "multistep":
        passed = sum(step >= m * steps_per_epoch for m in cfg.milestones)
        return cfg.gamma**passed
    progress = (step - warmup) / max(total - warmup, 1)
    return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int
) -> LambdaLR:
    """Per-step schedule (stepped after every optimizer step), saved with the resume state."""
    return LambdaLR(optimizer, lambda step: lr_factor(step, cfg, steps_per_epoch))
