"""Batches of mixed frame sizes (zero-padded by collate, real ``sizes`` beside them).

One-size batches must come out bit for bit as before mixed sizes existed: the reference below is
the implementation of commit 47259e8 (grid, batched apply, centre crop), frozen here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pytest
import torch
import torch.nn.functional as F

from sstl.augment import spatial
from sstl.augment.spatial import SpatialAugment, center_crop_normalize, two_view_augment
from sstl.config import SpatialConfig

STRONG = SpatialConfig(jitter_prob=1.0, blur_prob=0.5, grayscale_prob=0.3)
SIZES = [(128, 171), (96, 128), (128, 96), (112, 112), (128, 171), (64, 150)]


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- the implementation before mixed sizes (commit 47259e8), frozen --------------------------


def reference_grid(p: dict[str, torch.Tensor], h: int, w: int, size: int) -> torch.Tensor:
    j = (torch.arange(size, dtype=torch.float64) + 0.5) / size

    def centres(start, length, full):
        start, length = start.double()[:, None], length.double()[:, None]
        pos = torch.minimum(start + j * length - 0.5, start + length - 1).clamp_(min=start)
        return (2 * pos + 1) / full - 1

    xs, ys = centres(p["left"], p["width"], w), centres(p["top"], p["height"], h)
    xs = torch.where(p["flip"][:, None], xs.flip(1), xs)
    n = len(xs)
    grid = torch.stack([xs[:, None, :].expand(n, size, size), ys[:, :, None].expand(n, size, size)])
    return grid.permute(1, 2, 3, 0).float()


def reference_apply(aug: SpatialAugment, clips: torch.Tensor, params: dict) -> torch.Tensor:
    n, t, h, w, _ = clips.shape
    size, dev = aug.cfg.crop_size, clips.device
    grid = reference_grid(params, h, w, size).to(dev)
    saturation = torch.where(params["gray"], 0.0, params["saturation"])
    keys = ("brightness", "contrast", "saturation", "hue", "sigma")
    factors = torch.stack([saturation if k == "saturation" else params[k] for k in keys])
    out = torch.empty((n, 3, t, size, size))
    step = aug.cpu_chunk if dev.type == "cpu" else n
    frames = torch.empty(min(step, n) * t * h * w * 3, device=dev)
    for i in range(0, n, step):
        part = slice(i, i + step)
        x = aug._apply(clips[part], grid[part], factors[:, part], frames)
        spatial._normalize(x, aug.mean, aug.std, out=out[part])
    return out


def reference_center(clips: torch.Tensor, size: int, mean: Sequence, std: Sequence):
    *lead, t, h, w, _ = clips.shape
    short = round(size * 128 / 112)
    nh, nw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    x = clips.reshape(-1, t, h, w, 3).permute(0, 4, 1, 2, 3)
    if (nh, nw) != (h, w):
        x = F.interpolate(x.flatten(1, 2).float(), size=(nh, nw), mode="bilinear", antialias=True)
        x = x.view(-1, 3, t, nh, nw)
    top, left = round((nh - size) / 2), round((nw - size) / 2)
    x = x[..., top : top + size, left : left + size]
    return spatial._normalize(x, mean, std, scale=1 / 255).reshape(*lead, 3, t, size, size)


# --- helpers ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clips_of_sizes(real_clip: torch.Tensor) -> list[torch.Tensor]:
    """The real clip resized to each of SIZES: ``[8, h, w, 3]`` uint8 each."""
    frames = real_clip[:8].permute(0, 3, 1, 2).float()  # [T, 3, H, W]
    out = []
    for h, w in SIZES:
        x = F.interpolate(frames, size=(h, w), mode="bilinear", antialias=True)
        out.append(x.round().clamp(0, 255).byte().permute(0, 2, 3, 1).contiguous())
    return out


def padded(clips: list[torch.Tensor], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``[N, T, H, W, 3]`` padded at the bottom/right with ``fill`` and ``sizes [N, 2]``."""
    h = max(c.shape[1] for c in clips)
    w = max(c.shape[2] for c in clips)
    out = torch.full((len(clips), clips[0].shape[0], h, w, 3), fill, dtype=torch.uint8)
    for dst, c in zip(out, clips, strict=True):
        dst[:, : c.shape[1], : c.shape[2]] = c
    return out, torch.tensor([c.shape[1:3] for c in clips])


def own_params(aug: SpatialAugment, clips: list[torch.Tensor]) -> list[dict]:
    """Parameters of each clip drawn from its own size, as the loader worker draws them."""
    return [aug.sample_params(1, c.shape[1], c.shape[2], gen(i)) for i, c in enumerate(clips)]


def cat(params: list[dict]) -> dict:
    return {k: torch.cat([p[k] for p in params]) for k in params[0]}


# --- one size: unchanged ----------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [SpatialConfig(), STRONG, SpatialConfig(color=False)])
@pytest.mark.parametrize("chunk", [1, 3, 64])
def test_one_size_batches_are_bit_identical_to_before(real_clip, cfg, chunk):
    clips = torch.stack([real_clip[:8], real_clip[8:], real_clip[4:12]])
    aug = SpatialAugment(cfg, cpu_chunk=chunk)
    params = aug.sample_params(3, 128, 171, gen(5))
    before = reference_apply(aug, clips, params)
    assert torch.equal(aug.apply(clips, params), before)
    assert torch.equal(aug.apply(clips, params, torch.tensor([[128, 171]] * 3)), before)
    # the generator path draws the same parameters as before
    assert torch.equal(aug(clips, gen(5)), before)
    views = torch.stack([clips, clips.flip(1)], dim=1)  # [B, 2, T, H, W, 3]
    x, y = two_view_augment(aug, views, gen(7), sizes=torch.tensor([[128, 171]] * 3))
    g = gen(7)
    px, py = aug.sample_params(3, 128, 171, g), aug.sample_params(3, 128, 171, g)
    assert torch.equal(x, reference_apply(aug, views[:, 0], px))
    assert torch.equal(y, reference_apply(aug, views[:, 1], py))


@pytest.mark.parametrize("size", [112, 96])  # a plain crop; a resize first
def test_one_size_centre_crop_is_bit_identical_to_before(real_clip, size):
    clips = torch.stack([real_clip[:8], real_clip[8:]])[:, None]  # [B, K=1, T, H, W, 3]
    before = reference_center(clips, size, spatial.KINETICS_MEAN, spatial.KINETICS_STD)
    assert torch.equal(center_crop_normalize(clips, size), before)
    same = torch.tensor([[128, 171]] * 2)
    assert torch.equal(center_crop_normalize(clips, size, sizes=same), before)


# --- mixed sizes ------------------------------------------------------------------------------


def test_padding_is_never_read(clips_of_sizes):
    for chunk in (1, 64):  # CPU chunks of one clip; one chunk as on a GPU
        aug = SpatialAugment(STRONG, cpu_chunk=chunk)
        params = cat(own_params(aug, clips_of_sizes))
        zeros, sizes = padded(clips_of_sizes, 0)
        white, _ = padded(clips_of_sizes, 255)
        out = aug.apply(zeros, params, sizes)
        assert out.shape == (len(SIZES), 3, 8, 112, 112) and bool(out.isfinite().all())
        assert torch.equal(out, aug.apply(white, params, sizes)), chunk


def test_a_padded_clip_comes_out_as_it_would_alone(clips_of_sizes):
    params = own_params(SpatialAugment(STRONG), clips_of_sizes)
    alone = torch.cat(
        [
            SpatialAugment(STRONG).apply(c[None], p)
            for c, p in zip(clips_of_sizes, params, strict=True)
        ]
    )
    batch, sizes = padded(clips_of_sizes)
    one = SpatialAugment(STRONG, cpu_chunk=1).apply(batch, cat(params), sizes)
    assert torch.equal(one, alone)  # a one-clip chunk reads exactly the clip's own pixels
    whole = SpatialAugment(STRONG, cpu_chunk=64).apply(batch, cat(params), sizes)
    # grid normalised against the canvas, and kept 1e-3 px inside a clip's last row / column:
    # under a third of a grey level
    assert torch.allclose(whole, alone, atol=5e-3)


@pytest.mark.parametrize("size", [112, 96])
def test_centre_crop_of_a_padded_batch_equals_each_video_alone(clips_of_sizes, size):
    # [B, K=2, T, h, w, 3] per video: two clips sharing the video's size
    videos = [torch.stack([c, c.flip(0)]) for c in clips_of_sizes]
    h = max(v.shape[2] for v in videos)
    w = max(v.shape[3] for v in videos)
    batch = torch.full((len(videos), 2, 8, h, w, 3), 77, dtype=torch.uint8)
    for dst, v in zip(batch, videos, strict=True):
        dst[:, :, : v.shape[2], : v.shape[3]] = v
    sizes = torch.tensor([v.shape[2:4] for v in videos])
    out = center_crop_normalize(batch, size, sizes=sizes)
    assert out.shape == (len(videos), 2, 3, 8, size, size)
    for i, v in enumerate(videos):
        assert torch.equal(out[i], center_crop_normalize(v, size)), SIZES[i]


def test_forward_draws_each_clip_from_its_own_size(clips_of_sizes):
    batch, sizes = padded(clips_of_sizes)
    aug = SpatialAugment(SpatialConfig(crop_size=32))
    params = aug._sample_sized(len(SIZES), batch.shape[2], batch.shape[3], gen(), sizes)
    assert bool((params["top"] + params["height"] <= sizes[:, 0]).all())
    assert bool((params["left"] + params["width"] <= sizes[:, 1]).all())
    out = aug(batch, gen(), sizes=sizes)
    assert out.shape == (len(SIZES), 3, 8, 32, 32)
    off = SpatialAugment(dataclasses.replace(aug.cfg, enabled=False))(batch, sizes=sizes)
    assert torch.equal(off, center_crop_normalize(batch, 32, sizes=sizes))


def test_sizes_outside_the_canvas_are_rejected(clips_of_sizes):
    batch, sizes = padded(clips_of_sizes)
    aug = SpatialAugment(SpatialConfig())
    params = cat(own_params(aug, clips_of_sizes))
    with pytest.raises(ValueError, match=r"within the 128x171 canvas"):
        aug.apply(batch, params, sizes + 1)
    with pytest.raises(ValueError, match=r"\[6, 2\]"):
        center_crop_normalize(batch, 112, sizes=sizes[:3])
