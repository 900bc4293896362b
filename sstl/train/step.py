"""One SSTL training step (METHOD §3-§7), shared by ``sstl pretrain`` and ``bench/train_step.py``.

Per step, for a batch of ``B`` videos on this rank (``B_g = world * B`` in the job):

1. the loader workers cut both temporal views of each video's window and draw both views' spatial
   parameters (:class:`PretrainTransform`), from the sample's own generator;
2. the uint8 views ``[B, 2, T, H, W, 3]`` go to the device, where the spatial augmentation is
   applied batched -> ``[2B, 3, T, S, S]`` (all x views, then all y views);
3. one forward of the ``2B`` clips -> projection, pooled feature, playback rate;
4. projections, rates and the batch's video indices / positions are all-gathered (with gradient),
   so every rank computes the same loss over the GLOBAL batch: InfoNCE over ``2 B_g`` views plus
   ``K`` memory negatives, clip-to-video against the (detached) memory rows, rate MSE;
5. backward, SGD, lr schedule step;
6. the memory bank moves every video's row toward ``normalise(normalise(h_x) + normalise(h_y))``:
   both views come from the same window at the same position, so their mean is the least noisy
   estimate of the clip's feature (METHOD §5 names one feature ``h``; this is our reading).

Randomness never depends on the rank, the world size or the number of loader workers: augmentation
parameters come from the per-sample generator seeded by ``(seed, epoch, video)`` (ClipDataset),
memory negatives from a generator seeded by ``(seed, step)``, identical on every rank. Because
every rank computes the same loss and the gather's backward sums all ranks' gradients, DDP's
gradient average equals the one-process gradient on the global batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR

from sstl.augment.spatial import SpatialAugment
from sstl.augment.temporal import TemporalTwoViews
from sstl.config import OptimConfig, PretrainConfig, SpatialConfig, TemporalConfig
from sstl.data.clips import collate
from sstl.losses import clip_to_video, info_nce, playback_rate, sstl_loss
from sstl.memory import TemporalMemoryBank
from sstl.models.sstl import SSTLModel, unwrap
from sstl.train.distributed import DistEnv, all_gather_with_grad, convert_sync_batchnorm


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """A fresh generator on ``device`` seeded from ``(seed, step)``: the same on every rank."""
    value = int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(value % 2**63)


class PretrainTransform:
    """Loader-worker transform: a window -> two temporal views + both views' spatial parameters.

    ``{"frames": [W, H, W_, 3] uint8, "generator", ...}`` -> ``frames [2, T, H, W_, 3]``,
    ``rate [2]`` and ``spatial``: a dict of ``[2]`` tensors (view x, view y) that
    :meth:`SpatialAugment.apply` consumes on the device (collated to ``[B, 2]``). Drawing the
    parameters here, from the sample's generator, keeps them independent of rank and batch order.
    """

    def __init__(self, temporal: TemporalConfig, spatial: SpatialConfig) -> None:
        self.temporal = TemporalTwoViews(temporal)
        self.spatial = SpatialAugment(spatial)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        gen = sample.get("generator")
        out = self.temporal(sample)
        if self.spatial.cfg.enabled:
            _, _, h, w, _ = out["frames"].shape
            share = self.spatial.cfg.share_views
            params = self.spatial.sample_params(1 if share else 2, h, w, gen)
            out["spatial"] = {k: v.repeat(2) if share else v for k, v in params.items()}
        return out


def random_batch(cfg: PretrainConfig, batch: int, height: int, width: int) -> dict[str, Any]:
    """A loader batch of ``batch`` random-pixel videos, as ClipDataset + transform + collate give.

    For benchmarks: frames ``[batch, 2, T, height, width, 3]`` uint8 on the CPU, spatial params.
    """
    transform = PretrainTransform(cfg.temporal, cfg.spatial)
    samples = []
    for i in range(batch):
        gen = torch.Generator().manual_seed(i)
        shape = (cfg.temporal.window, height, width, 3)
        window = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
        sample = {"frames": window, "label": 0, "index": i, "position": (i + 0.5) / batch}
        samples.append(transform({**sample, "generator": gen}))
    return collate(samples)


def augment_views(augment: SpatialAugment, batch: dict[str, Any], device: torch.device) -> Tensor:
    """Batched spatial augmentation on ``device``: ``[B, 2, T, H, W, 3] uint8 -> [2B, 3, T, S, S]``.

    Uses the ``spatial`` parameters ``[B, 2]`` drawn by :class:`PretrainTransform` and the videos'
    real ``sizes [B, 2]`` in the zero-padded batch. Rows ``0..B-1`` are the x views, ``B..2B-1``
    the y views. With ``spatial.enabled: false``, a centre crop.
    """
    views = batch["frames"].to(device, non_blocking=True)
    b, _, t, h, w, _ = views.shape
    flat = views.transpose(0, 1).reshape(2 * b, t, h, w, 3)  # view x of every clip, then view y
    sizes = batch.get("sizes")  # [B, 2] real (h, w) of each video in the padded batch
    sizes = None if sizes is None else sizes.repeat(2, 1)  # same order as flat
    if not augment.cfg.enabled:
        return augment(flat, sizes=sizes)
    params = {k: v.T.reshape(-1) for k, v in batch["spatial"].items()}  # same order as flat
    return augment.apply(flat, params, sizes)


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
    augment = SpatialAugment(cfg.spatial)  # no parameters: it runs on the clips' device
    return StepParts(model, augment, bank, optimizer, scheduler, scaler, cfg, env)


def _autocast(cfg: PretrainConfig, device: torch.device) -> torch.autocast:
    # bf16 has fp32's range, so no loss scaling is needed (the GradScaler stays disabled).
    enabled = cfg.run.amp and device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def train_step(p: StepParts, batch: dict[str, torch.Tensor], step: int) -> dict[str, float]:
    """Forward, SSTL loss on the global batch, backward, SGD + lr step, memory update.

    Returns the unweighted loss parts and ``total`` as floats (identical on every rank).

    ``batch``: ``frames [B, 2, T, H, W, 3] uint8``, ``spatial`` (dict of ``[B, 2]``), ``rate
    [B, 2]``, ``index [B]`` (memory row), ``position [B]`` (window centre / frame count), as
    collated from ``ClipDataset`` with :class:`PretrainTransform`.
    """
    cfg, device = p.cfg, p.env.device
    clips = augment_views(p.augment, batch, device)  # (2B, 3, T, S, S): x views, then y views
    b = clips.shape[0] // 2
    with _autocast(cfg, device):
        out = p.model(clips)  # proj (2B, Dp), rate (2B,) or None

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
        neg_gen = step_generator(cfg.run.seed, step, p.bank.memory.device)
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
