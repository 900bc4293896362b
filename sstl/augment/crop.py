"""Crop geometry of the training augmentation: RandomResizedCrop boxes, the per-clip sampling
grids (also for clips smaller than a zero-padded canvas) and the one bilinear resample."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from sstl.config import SpatialConfig


def check_sizes(sizes: Tensor, n: int, height: int, width: int) -> None:
    """``sizes`` must be ``[n, 2]`` with 1 <= h <= height and 1 <= w <= width."""
    sizes = sizes.cpu()
    ok = sizes.shape == (n, 2) and not sizes.is_floating_point()
    ok = ok and bool((sizes >= 1).all()) and bool((sizes <= torch.tensor([height, width])).all())
    if not ok:
        raise ValueError(
            f"sizes {tuple(sizes.shape)} {sizes.tolist()[:4]} are not allowed: pass [{n}, 2] "
            f"integer (h, w) within the {height}x{width} canvas (collate's 'sizes')"
        )


def crop_grid(
    p: dict[str, Tensor], h: int | Tensor, w: int | Tensor, size: int, real: Tensor | None = None
) -> Tensor:
    """Sampling grid ``[N, size, size, 2]`` (x, y in [-1, 1], align_corners=False) per clip.

    Output pixel ``j`` samples the source at ``start + (j + 0.5) * length / size - 0.5`` kept
    inside the crop: the pixel centres of torchvision's resized_crop (antialias off). Flipped
    clips read their columns mirrored. ``h``, ``w``: the canvas the grid is normalised against
    (ints, or ``[N]`` per clip); ``real [N, 2]``: each clip's own (h, w) when it is smaller than
    its canvas (zero padding at the bottom and right). Such clips stay 1e-3 px inside their last
    row / column, so float32 rounding in grid_sample never gives padding a bilinear weight.
    """
    j = (torch.arange(size, dtype=torch.float64) + 0.5) / size

    def centres(start: Tensor, length: Tensor, full, own) -> Tensor:  # [N, size] in [-1, 1]
        start, length = start.double()[:, None], length.double()[:, None]
        pos = torch.minimum(start + j * length - 0.5, start + length - 1).clamp_(min=start)
        if isinstance(full, Tensor):
            full = full.double()[:, None]
        if own is not None:
            own = own.double()[:, None]
            pos = torch.minimum(pos, torch.where(own < full, own - 1 - 1e-3, torch.inf))
        return (2 * pos + 1) / full - 1

    own_h, own_w = (None, None) if real is None else (real[:, 0], real[:, 1])
    xs = centres(p["left"], p["width"], w, own_w)
    ys = centres(p["top"], p["height"], h, own_h)
    xs = torch.where(p["flip"][:, None], xs.flip(1), xs)
    n = len(xs)
    grid = torch.stack([xs[:, None, :].expand(n, size, size), ys[:, :, None].expand(n, size, size)])
    return grid.permute(1, 2, 3, 0).float()


def resample(clips: Tensor, grid: Tensor, frames: Tensor) -> Tensor:
    """``clips [N, T, H, W, 3] uint8`` sampled at ``grid [N, S, S, 2]`` -> ``[N, T, 3, S, S]``.

    One bilinear ``grid_sample`` over all frames, each clip's grid shared by its frames. The
    input is converted to float as it is (``frames``: a reused buffer of at least its size)
    and read channels-last through a strided view: no transpose. Values stay in 0..255.
    """
    n, t, h, w, _ = clips.shape
    s = grid.shape[1]
    frames = frames[: clips.numel()].view(n * t, h, w, 3)
    frames.view(clips.shape).copy_(clips)
    grid = grid[:, None].expand(n, t, s, s, 2).reshape(n * t, s, s, 2)  # a view when n == 1
    out = F.grid_sample(
        frames.permute(0, 3, 1, 2),
        grid,
        mode="bilinear",
        padding_mode="border",
        align_corners=False,
    )
    return out.view(n, t, 3, s, s)


def crop_boxes(
    n: int, h: int, w: int, cfg: SpatialConfig, gen: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """RandomResizedCrop boxes ``(top, left, height, width)``, each ``[n]``, torchvision's rule.

    Ten (area, log-ratio) tries per clip, the first that fits wins; clips with none fall back to
    the whole frame clipped to the ratio range, centred.
    """
    area = torch.empty(n, 10).uniform_(*cfg.scale, generator=gen) * (h * w)
    ratio = torch.empty(n, 10).uniform_(*map(math.log, cfg.ratio), generator=gen).exp_()
    cw, ch = (area * ratio).sqrt().round(), (area / ratio).sqrt().round()
    fits = (cw >= 1) & (cw <= w) & (ch >= 1) & (ch <= h)
    first = fits.int().argmax(1, keepdim=True)  # index of the first fitting try
    found = fits.any(1)
    lo, hi = min(cfg.ratio), max(cfg.ratio)
    fw, fh = (w, round(w / lo)) if w / h < lo else (round(h * hi), h) if w / h > hi else (w, h)
    cw = torch.where(found, cw.gather(1, first)[:, 0], float(fw))
    ch = torch.where(found, ch.gather(1, first)[:, 0], float(fh))
    top = (torch.rand(n, generator=gen) * (h - ch + 1)).floor()
    left = (torch.rand(n, generator=gen) * (w - cw + 1)).floor()
    top = torch.where(found, top, ((h - ch) / 2).floor())
    left = torch.where(found, left, ((w - cw) / 2).floor())
    return top, left, ch, cw
