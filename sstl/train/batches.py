"""Training batches: what the loader workers draw, and what the device does with it.

The spatial augmentation is split in two (METHOD §3): a loader worker draws each clip's parameters
from the sample's own seeded generator (so they never depend on the rank, the batch order or the
number of workers), and the device applies them to the whole uint8 batch at once
(:class:`~sstl.augment.spatial.SpatialAugment`).

- pretraining: :class:`PretrainTransform` cuts both temporal views of a window and draws both
  views' parameters; :func:`augment_views` makes ``[2B, 3, T, S, S]`` (x views, then y views);
- fine-tuning: :class:`FinetuneTransform` draws one clip's parameters; :func:`augment_clips`
  makes ``[B, 3, T, S, S]``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from sstl.augment.spatial import SpatialAugment
from sstl.augment.temporal import TemporalTwoViews
from sstl.config import PretrainConfig, SpatialConfig, TemporalConfig
from sstl.data.clips import collate


def step_generator(seed: int, step: int, device: torch.device) -> torch.Generator:
    """A fresh generator on ``device`` seeded from ``(seed, step)``: the same on every rank."""
    value = int(np.random.SeedSequence([seed, step]).generate_state(1, np.uint64)[0])
    return torch.Generator(device=device).manual_seed(value % 2**63)


class PretrainTransform:
    """Loader-worker transform: a window -> two temporal views + both views' spatial parameters.

    ``{"frames": [W, H, W_, 3] uint8, "generator", ...}`` -> ``frames [2, T, H, W_, 3]``,
    ``rate [2]`` and ``spatial``: a dict of ``[2]`` tensors (view x, view y) that
    :meth:`SpatialAugment.apply` consumes on the device (collated to ``[B, 2]``).
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


class FinetuneTransform:
    """Loader-worker transform: draw the window's spatial parameters from its own generator.

    ``{"frames": [T, H, W, 3] uint8, "generator"}`` -> adds ``spatial``: a dict of scalar tensors
    that :meth:`SpatialAugment.apply` consumes on the device after collation (``[B]`` each).
    """

    def __init__(self, spatial: SpatialConfig) -> None:
        self.augment = SpatialAugment(spatial)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.augment.cfg.enabled:
            _, h, w, _ = sample["frames"].shape
            params = self.augment.sample_params(1, h, w, sample.get("generator"))
            sample["spatial"] = {k: v[0] for k, v in params.items()}
        return sample


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


def augment_clips(augment: SpatialAugment, batch: dict[str, Any], device: torch.device) -> Tensor:
    """``frames [B, T, H, W, 3] uint8`` (zero-padded; real ``sizes [B, 2]``) -> ``[B, 3, T, S, S]``
    float on ``device``."""
    frames, sizes = batch["frames"].to(device, non_blocking=True), batch.get("sizes")
    if not augment.cfg.enabled:
        return augment(frames, sizes=sizes)  # centre crop + normalise
    return augment.apply(frames, batch["spatial"], sizes)


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
