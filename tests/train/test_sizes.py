"""Training batches of mixed frame sizes: the worker draws each clip's crop from its own size,
collate pads, and the device-side augmentation reads only each clip's real pixels."""

from __future__ import annotations

import torch

from sstl.augment.spatial import SpatialAugment
from sstl.config import PretrainConfig, SpatialConfig, TemporalConfig
from sstl.data.clips import collate
from sstl.train.batches import FinetuneTransform, PretrainTransform, augment_clips, augment_views

SHAPES = [(32, 42), (32, 38), (56, 32), (32, 32), (32, 54)]  # landscape x2, portrait, square, wide


def transformed(transform, samples: list[dict]) -> list[dict]:
    """What ClipDataset returns: the transform's output without the generator."""
    out = [transform(s) for s in samples]
    return [{k: v for k, v in s.items() if k != "generator"} for s in out]


def windows(length: int) -> list[dict]:
    """Random-pixel samples of the SHAPES, as ClipDataset hands them to the transform."""
    out = []
    for i, (h, w) in enumerate(SHAPES):
        gen = torch.Generator().manual_seed(i)
        frames = torch.randint(0, 256, (length, h, w, 3), generator=gen, dtype=torch.uint8)
        out.append({"frames": frames, "label": i, "index": i, "position": 0.5, "generator": gen})
    return out


def test_pretraining_views_of_mixed_sizes():
    cfg = PretrainConfig(
        temporal=TemporalConfig(clip_len=8, buffer=4, n_drop=1),
        spatial=SpatialConfig(crop_size=28, jitter_prob=1.0, blur_prob=0.5),
    )
    transform = PretrainTransform(cfg.temporal, cfg.spatial)
    samples = transformed(transform, windows(cfg.temporal.window))
    batch = collate(samples)  # failed before: torch.stack of unequal frames
    assert batch["sizes"].tolist() == [list(s) for s in SHAPES]
    aug = SpatialAugment(cfg.spatial, cpu_chunk=1)
    clips = augment_views(aug, batch, torch.device("cpu"))
    b = len(SHAPES)
    assert clips.shape == (2 * b, 3, 8, 28, 28) and bool(clips.isfinite().all())
    for i, s in enumerate(samples):  # rows 0..B-1: view x; B..2B-1: view y
        for v in (0, 1):
            params = {k: t[v : v + 1] for k, t in s["spatial"].items()}
            alone = aug.apply(s["frames"][v][None], params)
            assert torch.equal(clips[v * b + i], alone[0]), (i, v)


def test_finetuning_batch_of_mixed_sizes():
    spatial = SpatialConfig(crop_size=28, jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
    transform = FinetuneTransform(spatial)
    samples = transformed(transform, windows(8))
    batch = collate(samples)
    aug = SpatialAugment(spatial, cpu_chunk=1)
    clips = augment_clips(aug, batch, torch.device("cpu"))
    assert clips.shape == (len(SHAPES), 3, 8, 28, 28)
    for i, s in enumerate(samples):
        params = {k: v[None] for k, v in s["spatial"].items()}
        assert torch.equal(clips[i], aug.apply(s["frames"][None], params)[0])
    off = SpatialAugment(SpatialConfig(crop_size=28, enabled=False))
    centred = augment_clips(off, collate(samples), torch.device("cpu"))
    assert centred.shape == (len(SHAPES), 3, 8, 28, 28)
