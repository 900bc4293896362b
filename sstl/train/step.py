"""One SSTL training step (METHOD §3-§7), shared by ``sstl pretrain`` and ``bench/train_step.py``.

Per step, for a batch of ``B`` videos on this rank (``B_g = world * B`` in the job):

1. both temporal views arrive as uint8 ``[B, 2, T, H, W, 3]`` (made in the loader workers);
2. spatial augmentation runs batched on the device -> ``x, y [B, 3, T, S, S]``;
3. one forward of ``cat(x, y)`` (``2B`` clips) -> projection, pooled feature, playback rate;
4. projections, rates and the batch's video indices / positions are all-gathered (with gradient),
   so every rank computes the same loss over the GLOBAL batch: InfoNCE over ``2 B_g`` views plus
   ``K`` memory negatives, clip-to-video against the (detached) memory rows, rate MSE;
5. backward + SGD;
6. the memory bank moves every video's row toward ``normalise(normalise(h_x) + normalise(h_y))``:
   both views come from the same window at the same position, so their mean is the least noisy
   estimate of the clip's feature (METHOD §5 names one feature ``h``; this is our reading).

Randomness that must not depend on the number of loader workers or on a resume comes from
generators seeded by ``(seed, step, stream)``: the memory negatives use the same stream on every
rank (identical draws); the spatial augmentation uses one stream per rank, so ranks augment
differently. Because every rank computes the same loss and the gather's backward sums all ranks'
gradients, DDP's gradient average equals the one-process gradient on the global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from sstl.augment.spatial import SpatialAugment, two_view_augment
from sstl.config import OptimConfig, PretrainConfig
from sstl.losses import clip_to_video, info_nce, playback_rate, sstl_loss
from sstl.memory import TemporalMemoryBank
from sstl.models.sstl import SSTLModel, unwrap
from sstl.train.distributed import DistEnv, all_gather_with_grad, convert_sync_batchnorm

NEGATIVES_STREAM = 0  # generator stream of the memory negatives (shared by all ranks)
SPATIAL_STREAM = 1  # + rank: generator stream of the spatial augmentation


def step_generator(seed: int, step: int, stream: int, device: torch.device) -> torch.Generator:
    """A fresh generator on ``device`` seeded from ``(seed, step, stream)`` (no collisions)."""
    value = int(np.random.SeedSequence([seed, step, stream]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(value % 2**63)


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


@dataclass
class StepParts:
    """Everything a step uses besides the batch; ``model`` may be wrapped in DDP."""

    model: nn.Module
    augment: SpatialAugment
    bank: TemporalMemoryBank | None
    optimizer: torch.optim.Optimizer
    scheduler: LambdaLR
    scaler: torch.amp.GradScaler
    cfg: PretrainConfig
    env: DistEnv

    def state_dict(self) -> dict[str, Any]:
        """What a resume needs of the step: weights, optimizer, schedule, scaler, memory bank."""
        return {
            "model": unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "memory": self.bank.state_dict() if self.bank is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unwrap(self.model).load_state_dict(state["model"])  # in place: DDP sees it too
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        if self.bank is not None:
            self.bank.load_state_dict(state["memory"])


def build_parts(
    cfg: PretrainConfig, env: DistEnv, num_videos: int, steps_per_epoch: int
) -> StepParts:
    """Model (SyncBN + DDP when distributed), spatial augmentation, memory bank, SGD, schedule.

    Call after seeding: the initial weights come from torch's default generator (DDP also
    broadcasts rank 0's weights), the memory bank from its own ``seed``.
    """
    device = env.device
    model: nn.Module = SSTLModel(cfg.model).to(device)
    if env.distributed:
        model = convert_sync_batchnorm(model, device)  # BN statistics over the global batch
        ids = [device.index] if device.type == "cuda" else None
        model = DistributedDataParallel(model, device_ids=ids)
    bank = None
    if cfg.memory.enabled:
        m = cfg.memory
        bank = TemporalMemoryBank(
            num_videos,
            m.slots,
            cfg.model.proj_dim,
            m.momentum,
            m.attenuation,
            m.rule,
            m.neighbour_update,
            seed=cfg.run.seed,
        ).to(device)
    optimizer = build_optimizer(model, cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim, steps_per_epoch)
    scaler = torch.amp.GradScaler(device.type, enabled=False)  # bf16 autocast needs no scaling
    augment = SpatialAugment(cfg.spatial).to(device)
    return StepParts(model, augment, bank, optimizer, scheduler, scaler, cfg, env)


def _autocast(cfg: PretrainConfig, device: torch.device) -> torch.autocast:
    # bf16 has fp32's range, so no loss scaling is needed (the GradScaler stays disabled).
    enabled = cfg.run.amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def train_step(p: StepParts, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """Forward, SSTL loss on the global batch, backward, SGD + lr step, memory update.

    Returns the unweighted loss parts and ``total`` as floats (identical on every rank).

    ``batch``: ``frames [B, 2, T, H, W, 3] uint8``, ``rate [B, 2]``, ``index [B]`` (memory row),
    ``position [B]`` (window centre / frame count), as collated from ``ClipDataset`` with
    ``TemporalTwoViews``.
    """
    cfg, env, device = p.cfg, p.env, p.env.device
    views = batch["frames"].to(device, non_blocking=True)  # (B, 2, T, H, W, 3) uint8
    gen = step_generator(cfg.run.seed, step, SPATIAL_STREAM + env.rank, device)
    x, y = two_view_augment(p.augment, views, gen)  # (B, 3, T, S, S) float each
    b = x.shape[0]
    with _autocast(cfg, device):
        out = p.model(torch.cat([x, y]))  # proj (2B, Dp), rate (2B,) or None

    # Everything the loss needs, gathered over ranks: (B, 2 Dp [+ 2]) with gradient ...
    proj = out["proj"].float()
    rate_pred = out["rate"].float() if out["rate"] is not None else None
    local = [proj[:b], proj[b:]]
    if rate_pred is not None:
        local += [rate_pred[:b, None], rate_pred[b:, None]]
    gathered = all_gather_with_grad(torch.cat(local, dim=1))
    dim = proj.shape[1]
    h_x, h_y = gathered[:, :dim], gathered[:, dim : 2 * dim]  # (B_g, Dp) each
    # ... and without: video index, position, the two views' rate labels, exact in float64.
    info = torch.stack(
        [batch["index"].double(), batch["position"].double(), *batch["rate"].double().T], dim=1
    )
    info = all_gather_with_grad(info.to(device, non_blocking=True))
    video_idx, positions, rate_true = info[:, 0].long(), info[:, 1].float(), info[:, 2:].float()

    parts: dict[str, torch.Tensor | None] = {}
    negatives = None
    if p.bank is not None and cfg.memory.negatives > 0:
        neg_gen = step_generator(cfg.run.seed, step, NEGATIVES_STREAM, p.bank.memory.device)
        negatives = p.bank.sample_negatives(cfg.memory.negatives, video_idx, neg_gen)
    parts["ctr"] = info_nce(h_x, h_y, negatives, cfg.loss.temperature)
    if p.bank is not None and cfg.memory.video_loss:
        video = p.bank.video_features(video_idx)  # (B_g, Dp) memory row means, a fixed target
        parts["video"] = clip_to_video(torch.cat([h_x, h_y]), torch.cat([video, video]))
    if rate_pred is not None and cfg.temporal.speed_distortion:
        pred = gathered[:, 2 * dim :]  # (B_g, 2): views x, y
        parts["spd"] = playback_rate(pred.T.reshape(-1), rate_true.T.reshape(-1))
    total, logs = sstl_loss(parts, cfg.loss)

    p.optimizer.zero_grad(set_to_none=True)
    p.scaler.scale(total).backward()
    p.scaler.step(p.optimizer)
    p.scaler.update()
    p.scheduler.step()

    if p.bank is not None:
        h = F.normalize(F.normalize(h_x.detach(), dim=1) + F.normalize(h_y.detach(), dim=1), dim=1)
        p.bank.update(video_idx, positions, h)  # same gathered update on every rank
    return logs
