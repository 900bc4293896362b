"""SSTL losses (paper Eq. 3-6, METHOD §6) as pure functions of tensors."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
import torch.nn.functional as F

from sstl.config import LossConfig

# part name in ``sstl_loss(parts)`` -> weight field of LossConfig (Eq. 6's lambdas)
PART_WEIGHTS = {"ctr": "w_ctr", "spd": "w_spd", "video": "w_video"}


def info_nce(
    h_x: torch.Tensor,
    h_y: torch.Tensor,
    negatives: torch.Tensor | None = None,
    temperature: float = 0.1,
) -> torch.Tensor:
    """Symmetric clip-to-clip InfoNCE (NT-Xent), Eq. 3-4: a scalar.

    ``h_x [B, D]`` and ``h_y [B, D]`` are the two views' projections (any scale: cosine
    similarity is used), ``negatives [K, D]`` extra features from the memory bank. For anchor
    ``h_{i,x}`` the positive is ``h_{i,y}``; the negatives are every other view in the batch
    (``h_{k,x}``, ``h_{k,y}``, k != i) plus the K memory features; the same for anchor
    ``h_{i,y}``; the loss is the mean over the 2B anchors (Eq. 4).

    The denominator holds the positive plus the negatives (standard NT-Xent). Eq. 3 as printed
    applies the indicator ``1[k != i]`` only to the ``h_{k,x}`` term, so its ``h_{k,y}`` sum
    includes the positive too: both readings agree.
    """
    b = h_x.shape[0]
    z = F.normalize(torch.cat([h_x, h_y]).float(), dim=1)  # (2B, D) views x then y
    logits = z @ z.T / temperature  # (2B, 2B)
    self_mask = torch.eye(2 * b, dtype=torch.bool, device=z.device)
    logits = logits.masked_fill(self_mask, float("-inf"))  # a view is not its own negative
    if negatives is not None and len(negatives):
        mem = F.normalize(negatives.detach().float(), dim=1)  # (K, D)
        logits = torch.cat([logits, z @ mem.T / temperature], dim=1)  # (2B, 2B + K)
    positive = torch.cat([torch.arange(b, 2 * b), torch.arange(b)]).to(z.device)  # i <-> i + B
    return F.cross_entropy(logits, positive)


def clip_to_video(h: torch.Tensor, video_feats: torch.Tensor) -> torch.Tensor:
    """Clip-to-video loss, Eq. 5: ``-cos(h_i, mean_l theta^i_l)`` averaged over the batch.

    ``h [B, D]`` clip projections; ``video_feats [B, D]`` the memory rows' slot means of the same
    videos (a target only: detached here). Call it on both views stacked to average over both.
    """
    if h.shape != video_feats.shape:
        raise ValueError(
            f"clip_to_video: h {tuple(h.shape)} and video_feats {tuple(video_feats.shape)} "
            "must have the same [B, D] shape"
        )
    return -F.cosine_similarity(h.float(), video_feats.detach().float(), dim=1).mean()


def playback_rate(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Playback-rate regression: mean of ``1/2 (s_hat - s)^2`` over ``pred [B]``, ``target [B]``."""
    if pred.shape != target.shape:
        # [B, 1] against [B] would broadcast to [B, B] silently
        raise ValueError(
            f"playback_rate: pred {tuple(pred.shape)} and target {tuple(target.shape)} "
            "must have the same [B] shape"
        )
    return 0.5 * (pred.float() - target.float()).pow(2).mean()


def sstl_loss(
    parts: Mapping[str, torch.Tensor | None], weights: LossConfig | Mapping[str, float]
) -> tuple[torch.Tensor, dict[str, float]]:
    """Eq. 6: ``w_ctr L_ctr + w_spd L_spd + w_video L_video`` and the parts as floats.

    ``parts`` maps ``ctr``/``spd``/``video`` to scalar losses; absent or None parts are skipped
    (e.g. no speed head). ``weights`` is a LossConfig or a mapping of its ``w_*`` fields; missing
    weights take the paper's defaults 1.0 / 0.1 / 0.2. The floats are unweighted, plus ``total``.
    """
    if isinstance(weights, LossConfig):
        weights = dataclasses.asdict(weights)
    defaults = dataclasses.asdict(LossConfig())
    unknown = sorted(set(parts) - set(PART_WEIGHTS))
    if unknown:
        raise ValueError(f"unknown loss part {unknown[0]!r}: allowed {sorted(PART_WEIGHTS)}")
    present = {k: v for k, v in parts.items() if v is not None}
    if not present:
        raise ValueError("sstl_loss got no loss parts: expected some of ctr, spd, video")
    total = sum(
        weights.get(PART_WEIGHTS[k], defaults[PART_WEIGHTS[k]]) * v for k, v in present.items()
    )
    logs = {k: float(v.detach()) for k, v in present.items()}
    logs["total"] = float(total.detach())
    return total, logs
