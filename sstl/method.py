"""SSTL, the method (paper Sec 3, Eq. 1-6; METHOD §3-§6), as one module.

:class:`SSTL` owns the encoder f (backbone, projection head g, playback-rate head) and the temporal
memory bank, and composes the loss. Read it next to the paper:

- the two views of every video (x, y), already augmented, go through f in one forward;
- projections, predicted rates, video indices, positions and rate labels are all-gathered over
  the ranks (projections with gradient), so every rank computes the same loss over the GLOBAL
  batch ``B_g`` and DDP's gradient average equals the one-process gradient;
- Eq. 3-4: InfoNCE between the views, with ``K`` extra negatives drawn from memory cells of
  videos outside the batch;
- Eq. 5: clip-to-video, each clip against the (detached) slot mean of its video's memory row;
- playback-rate regression ``1/2 (s_hat - s)^2`` on both views;
- Eq. 6: the weighted sum;
- Eq. 1-2: the memory update, done in ``forward`` after the loss like moco-v3's momentum update
  (the bank is a buffer outside the graph, and the update only uses detached features, so doing
  it before or after the optimizer step gives the same bank). Each video's row moves toward
  ``normalise(normalise(h_x) + normalise(h_y))``: both views come from the same window at the
  same position, so their mean is the least noisy estimate of the clip's feature (METHOD §5
  names one feature ``h``; this is our reading).

The training step (:mod:`sstl.train.pretrain`) keeps only the optimizer plumbing around it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sstl.collectives import all_gather_with_grad
from sstl.config import LossConfig, MemoryConfig, ModelConfig
from sstl.losses import clip_to_video, info_nce, playback_rate, sstl_loss
from sstl.memory import TemporalMemoryBank
from sstl.models.sstl import SSTLModel


class SSTL(nn.Module):
    """Encoder + temporal memory bank + the SSTL loss: ``forward(clips, batch) -> (loss, logs)``.

    ``encoder`` may be replaced by its DDP wrapper (``method.encoder = DDP(method.encoder)``):
    only the encoder's gradients are averaged, and the bank, which every rank updates with the
    same gathered features, is never broadcast.
    """

    def __init__(
        self,
        model: ModelConfig,
        memory: MemoryConfig,
        loss: LossConfig,
        num_videos: int,
        speed_distortion: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.encoder: nn.Module = SSTLModel(model)
        self.bank = None
        if memory.enabled:
            self.bank = TemporalMemoryBank(
                num_videos,
                memory.slots,
                model.proj_dim,
                memory.momentum,
                memory.attenuation,
                memory.rule,
                memory.neighbour_update,
                seed=seed,  # every DDP rank starts from the same bank without a broadcast
            )
        self.memory_cfg, self.loss_cfg = memory, loss
        self.speed_distortion = speed_distortion  # the rate loss needs distorted views

    def forward(
        self, clips: Tensor, batch: dict[str, Tensor], generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """One step's loss on the global batch; updates the memory bank.

        ``clips [2B, 3, T, S, S]``: the x views of this rank's ``B`` videos, then their y views.
        ``batch``: ``index [B]`` (memory row), ``position [B]`` (window centre / frame count),
        ``rate [B, 2]`` (the views' playback rates). ``generator`` draws the memory negatives
        (the same on every rank). Returns the total (a scalar with gradient) and the unweighted
        parts and ``total`` as floats, identical on every rank.
        """
        b = clips.shape[0] // 2
        out = self.encoder(clips)  # proj (2B, Dp), rate (2B,) or None
        with torch.autocast(clips.device.type, enabled=False):  # the loss in float32
            h_x, h_y, rate_pred = self._gather_views(out, b)  # (B_g, Dp) x2, (B_g, 2) or None
            video_idx, positions, rate_true = self._gather_info(batch, clips.device)
            parts: dict[str, Tensor | None] = {}
            negatives = None
            if self.bank is not None and self.memory_cfg.negatives > 0:
                negatives = self.bank.sample_negatives(
                    self.memory_cfg.negatives, video_idx, generator
                )  # (K, Dp)
            parts["ctr"] = info_nce(h_x, h_y, negatives, self.loss_cfg.temperature)  # Eq. 3-4
            if self.bank is not None and self.memory_cfg.video_loss:
                video = self.bank.video_features(video_idx)  # (B_g, Dp), a fixed target
                parts["video"] = clip_to_video(torch.cat([h_x, h_y]), torch.cat([video, video]))
            if rate_pred is not None and self.speed_distortion:
                pred = rate_pred.T.reshape(-1)  # views x then y, as rate_true below
                parts["spd"] = playback_rate(pred, rate_true.T.reshape(-1))
            total, logs = sstl_loss(parts, self.loss_cfg)  # Eq. 6
        if self.bank is not None:  # Eq. 1-2
            h = F.normalize(F.normalize(h_x.detach(), dim=1) + F.normalize(h_y.detach(), dim=1))
            self.bank.update(video_idx, positions, h)
        return total, logs

    def _gather_views(self, out: dict[str, Any], b: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """This rank's projections and rates -> the global batch's, with gradient."""
        proj = out["proj"].float()
        rate = out["rate"].float() if out["rate"] is not None else None
        local = [proj[:b], proj[b:]]
        if rate is not None:
            local += [rate[:b, None], rate[b:, None]]
        gathered = all_gather_with_grad(torch.cat(local, dim=1))  # (B_g, 2 Dp [+ 2])
        dim = proj.shape[1]
        rates = gathered[:, 2 * dim :] if rate is not None else None
        return gathered[:, :dim], gathered[:, dim : 2 * dim], rates

    @staticmethod
    def _gather_info(batch: dict[str, Tensor], device: torch.device) -> tuple[Tensor, ...]:
        """Video index ``[B_g]``, position ``[B_g]`` and rate labels ``[B_g, 2]`` of the global
        batch, exact (they travel as float64)."""
        info = torch.stack(
            [batch["index"].double(), batch["position"].double(), *batch["rate"].double().T], 1
        )
        info = all_gather_with_grad(info.to(device, non_blocking=True))
        return info[:, 0].long(), info[:, 1].float(), info[:, 2:].float()
