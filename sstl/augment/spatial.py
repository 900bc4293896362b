"""Batched, clip-consistent spatial augmentations on the training device (METHOD §3).

Every clip draws one set of parameters (crop box, flip, colour factors, grayscale, blur sigma)
that applies to all of its frames; the two views draw independently unless
``SpatialConfig.share_views``. All ops are vectorised over the batch:

- random resized crop + horizontal flip are one ``F.grid_sample`` (bilinear, one affine grid per
  clip, a mirrored grid for flipped clips) from the uint8 frames converted as they are, channels
  last. Bilinear without antialiasing, like torchvision's tensor resize before 0.17; the
  largest downscale here is 171/112 ~ 1.5, so aliasing is mild;
- colour ops are ``torchvision.transforms.v2.functional``'s formulas (blends, per-frame
  contrast mean, HSV hue) written as in-place arithmetic; the hue rotation needs no HSV tensor
  and no masks, which is what makes it ~10x cheaper than converting to HSV;
- Gaussian blur is one depthwise separable convolution (reflect padding, kernel per clip).

Choices that differ from torchvision's ``ColorJitter``: the four jitter ops run in one fixed
order (brightness, contrast, hue, saturation: one of the orders torchvision draws from), and
grayscale is applied as saturation factor 0, which equals converting after saturation.
On the CPU the batch is processed in chunks of ``cpu_chunk`` clips so that the ~30 passes over
the pixels hit the cache (3-8x faster than streaming a whole batch through memory); on a GPU
the whole batch is one chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sstl.config import SpatialConfig

__all__ = [
    "KINETICS_MEAN",
    "KINETICS_STD",
    "SpatialAugment",
    "blur",
    "center_crop_normalize",
    "color_jitter_",
    "two_view_augment",
]

KINETICS_MEAN = (0.43216, 0.394666, 0.37645)  # torchvision video models' normalisation
KINETICS_STD = (0.22803, 0.22145, 0.216989)
_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
STORE_SHORT_SIDE, PAPER_CROP = 128, 112  # frames are stored at short side 128 for 112 crops


def _crop_grid(p: dict[str, Tensor], h: int, w: int, size: int) -> Tensor:
    """Sampling grid ``[N, size, size, 2]`` (x, y in [-1, 1], align_corners=False) per clip.

    Output pixel ``j`` samples the source at ``start + (j + 0.5) * length / size - 0.5`` kept
    inside the crop, exactly the pixel centres of torchvision's resized_crop (antialias off);
    flipped clips read their columns mirrored.
    """
    j = (torch.arange(size, dtype=torch.float64) + 0.5) / size

    def centres(start: Tensor, length: Tensor, full: int) -> Tensor:  # [N, size] in [-1, 1]
        pos = start[:, None] + j * length[:, None] - 0.5
        pos = torch.minimum(pos, (start + length - 1)[:, None]).clamp_(min=start[:, None])
        return (2 * pos + 1) / full - 1

    xs, ys = centres(p["left"], p["width"], w), centres(p["top"], p["height"], h)
    xs = torch.where(p["flip"][:, None], xs.flip(1), xs)
    n = len(xs)
    grid = torch.stack([xs[:, None, :].expand(n, size, size), ys[:, :, None].expand(n, size, size)])
    return grid.permute(1, 2, 3, 0).float()


def _resample(clips: Tensor, grid: Tensor) -> Tensor:
    """``clips [N, T, H, W, 3] uint8`` sampled at ``grid [N, S, S, 2]`` -> ``[N, T, 3, S, S]``.

    Values stay in 0..255 (the 1/255 is folded into the next multiply).
    """
    n, t, h, w, _ = clips.shape
    s = grid.shape[1]
    frames = torch.empty(n * t, 3, h, w, device=clips.device, memory_format=torch.channels_last)
    frames.copy_(clips.reshape(n * t, h, w, 3).permute(0, 3, 1, 2))  # no transpose: same layout
    grid = grid.to(clips.device)[:, None].expand(n, t, s, s, 2).reshape(n * t, s, s, 2)
    out = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out.view(n, t, 3, s, s)


def _per_clip(v: Tensor | float, x: Tensor) -> Tensor:
    """Per-clip values ``[N]`` shaped to broadcast against ``x [N, ...]``."""
    v = torch.as_tensor(v, dtype=x.dtype)
    return v.to(x.device).view(-1, *([1] * (x.dim() - 1)))


def _gray(x: Tensor) -> Tensor:
    """Luma ``[N, T, H, W]`` of ``x [N, T, 3, H, W]`` (torchvision's weights), a new tensor."""
    r, g, b = x.unbind(2)
    return torch.mul(r, _GRAY[0]).add_(g, alpha=_GRAY[1]).add_(b, alpha=_GRAY[2])


def _hue_(x: Tensor, shift: Tensor) -> None:
    """Rotate the HSV hue of ``x [N, T, 3, H, W]`` in [0, 1] by ``shift [N]`` turns, in place.

    Value (max) and chroma (max - min) do not change, so each output channel is
    ``max - chroma * f(k)``, ``f`` the trapezoid torchvision's hsv_to_rgb evaluates at the
    shifted hue. Sector selection uses ``ceil(max - c)`` (0 iff c is the max) instead of masks.
    """
    r, g, b = x.unbind(2)
    mx = torch.maximum(r, g)
    torch.maximum(mx, b, out=mx)
    cr = torch.minimum(r, g)
    torch.minimum(cr, b, out=cr)
    cr.neg_().add_(mx)  # chroma
    not_r, not_g = torch.sub(mx, r).ceil_(), torch.sub(mx, g).ceil_()
    # chroma * hue in sixths: r max: g - b; g max: b - r + 2cr; b max: r - g + 4cr, written as
    # (g - b) + not_r * ((3b - sum + 2cr) + not_g * (3r - sum + 2cr))
    q = torch.add(r, g).add_(b).neg_().add_(cr, alpha=2)
    inner = torch.add(q, r, alpha=3).mul_(not_g).add_(b, alpha=3).add_(q)
    hue = torch.sub(g, b).addcmul_(not_r, inner)
    cr6 = cr.mul_(6)
    hue.div_(cr6.clamp(min=1e-12)).add_(_per_clip(shift, hue))  # turns, in [-2/3, 1)
    base = torch.add(mx, cr6, alpha=-1 / 3)  # max - 2 chroma
    for channel, offset in zip((r, g, b), (2.0, 5 / 3, 4 / 3), strict=True):
        # f = 2 - 6 clamp(a, 1/6, 1/3), a = distance of the hue from the channel's peak (turns)
        a = torch.add(hue, offset).frac_().sub_(0.5).abs_().clamp_(1 / 6, 1 / 3)
        torch.addcmul(base, cr6, a, out=channel)


def color_jitter_(
    x: Tensor,
    brightness: Tensor,
    contrast: Tensor,
    saturation: Tensor,
    hue: Tensor,
    scale: float = 1.0,
) -> Tensor:
    """Colour jitter of ``x [N, T, 3, H, W]`` float with per-clip factors ``[N]``, in place.

    ``x * scale`` must lie in [0, 1] (``scale=1/255`` takes 0..255 input); returns x in [0, 1].
    Factors (1, 1, 1, 0) leave a clip unchanged; saturation 0 is grayscale.
    Order: brightness, contrast, hue, saturation.
    """
    n, t = x.shape[:2]
    x.mul_(_per_clip(brightness * scale, x)).clamp_(0, 1)
    c = _per_clip(contrast, x)
    mean = x.mean(dim=(-2, -1)) @ x.new_tensor(_GRAY)  # [N, T]: per-frame mean of the luma
    torch.addcmul((1 - c) * mean.view(n, t, 1, 1, 1), x, c, out=x).clamp_(0, 1)
    if bool((hue != 0).any()):
        _hue_(x, hue)
    s = _per_clip(saturation, x)
    gray = _gray(x).mul_(1 - s.view(n, 1, 1, 1))
    torch.addcmul(gray.unsqueeze(2), x, s, out=x).clamp_(0, 1)
    return x


def blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Gaussian blur of ``x [N, T, C, H, W]`` float with per-clip ``sigma [N]``, a new tensor.

    torchvision's ``gaussian_blur`` (odd ``kernel_size``, reflect padding) as a separable
    depthwise convolution with each clip's kernel repeated over its frames and channels.
    """
    n, t, c, h, w = x.shape
    r = kernel_size // 2
    d = torch.arange(-r, r + 1, dtype=torch.float64)
    k = torch.softmax(-0.5 * (d / sigma.double()[:, None]) ** 2, dim=1).float()  # [N, K]
    k = k.to(x.device).repeat_interleave(t * c, dim=0)  # [N*T*C, K]
    padded = F.pad(x.reshape(1, n * t * c, h, w), (r, r, r, r), mode="reflect")
    out = F.conv2d(padded, k.view(-1, 1, 1, kernel_size), groups=n * t * c)
    out = F.conv2d(out, k.view(-1, 1, kernel_size, 1), groups=n * t * c)
    return out.view(n, t, c, h, w)


def _normalize(
    x: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float,
    out: Tensor | None = None,
) -> Tensor:
    """``x [N, T, 3, S, S]`` (times ``scale`` in [0, 1]) -> normalised ``[N, 3, T, S, S]``.

    The layout change rides along with the normalisation: one pass writing ``out``.
    """
    n, t, _, h, w = x.shape
    inv = torch.tensor([scale / v for v in std], device=x.device).view(1, 3, 1, 1, 1)
    shift = torch.tensor([-m / v for m, v in zip(mean, std, strict=True)], device=x.device)
    out = torch.empty(n, 3, t, h, w, device=x.device) if out is None else out
    return torch.addcmul(shift.view(1, 3, 1, 1, 1), x.transpose(1, 2), inv, out=out)


def center_crop_normalize(
    clips: Tensor,
    size: int,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
) -> Tensor:
    """Evaluation transform: ``[..., T, H, W, 3] uint8`` -> ``[..., 3, T, size, size]`` float.

    Frames are stored with short side 128 for 112 crops (METHOD §1), so at the paper's size this
    is a plain centre crop. Otherwise the short side is first resized (bilinear, antialiased) to
    ``round(size * 128 / 112)``, keeping the paper's crop fraction. Then normalise.
    """
    *lead, t, h, w, _ = clips.shape
    short = round(size * STORE_SHORT_SIDE / PAPER_CROP)
    # the long side as torchvision's resize computes it (truncated)
    nh, nw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    x = clips.reshape(-1, h, w, 3).permute(0, 3, 1, 2)  # [N*T, 3, H, W]
    if (nh, nw) != (h, w):
        x = F.interpolate(x.float(), size=(nh, nw), mode="bilinear", antialias=True)
    top, left = round((nh - size) / 2), round((nw - size) / 2)  # torchvision's center_crop
    x = x[..., top : top + size, left : left + size].float()
    out = _normalize(x.reshape(-1, t, 3, size, size), mean, std, 1 / 255)
    return out.reshape(*lead, 3, t, size, size)


def _crop_boxes(
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
    return top.double(), left.double(), ch.double(), cw.double()


class SpatialAugment(nn.Module):
    """Training spatial augmentation: ``[B, T, H, W, 3] uint8`` -> ``[B, 3, T, S, S]`` float.

    Runs on the clips' device. Parameters are drawn on the CPU (``generator``: a CPU
    ``torch.Generator``, or None for torch's default one) and moved over. No learnable
    parameters. ``cpu_chunk``: clips per cache-sized chunk on the CPU.
    """

    def __init__(
        self,
        cfg: SpatialConfig,
        mean: Sequence[float] = KINETICS_MEAN,
        std: Sequence[float] = KINETICS_STD,
        cpu_chunk: int = 2,
    ) -> None:
        super().__init__()
        self.cfg, self.cpu_chunk = cfg, cpu_chunk
        self.mean, self.std = tuple(mean), tuple(std)
        # 3 sigma each side of the widest kernel; reflect padding needs radius < crop size.
        self.kernel_size = min(2 * math.ceil(3 * cfg.blur_sigma[1]) + 1, 2 * cfg.crop_size - 1)

    def sample_params(
        self, n: int, height: int, width: int, generator: torch.Generator | None = None
    ) -> dict[str, Tensor]:
        """Per-clip parameters, each ``[n]`` on the CPU."""
        if generator is not None and generator.device.type != "cpu":
            raise ValueError(f"generator on {generator.device} is not allowed: pass a CPU one")
        cfg, gen = self.cfg, generator
        top, left, ch, cw = _crop_boxes(n, height, width, cfg, gen)

        def uniform(lo: float, hi: float) -> Tensor:
            return torch.empty(n).uniform_(lo, hi, generator=gen)

        def coin(p: float) -> Tensor:
            return torch.rand(n, generator=gen) < p

        flip, jitter = coin(cfg.flip_prob), coin(cfg.jitter_prob) & cfg.color
        one = torch.ones(n)
        b, c, s = (
            torch.where(jitter, uniform(max(0.0, 1 - v), 1 + v), one)
            for v in (cfg.brightness, cfg.contrast, cfg.saturation)
        )
        hue = torch.where(jitter, uniform(-cfg.hue, cfg.hue), 0 * one)
        gray = coin(cfg.grayscale_prob) & cfg.color
        sigma = torch.where(coin(cfg.blur_prob) & cfg.color, uniform(*cfg.blur_sigma), 0 * one)
        return {"top": top, "left": left, "height": ch, "width": cw, "flip": flip,
                "brightness": b, "contrast": c, "saturation": s, "hue": hue, "gray": gray,
                "sigma": sigma}  # fmt: skip

    def _apply(self, clips: Tensor, p: dict[str, Tensor], out: Tensor) -> Tensor:
        x = _resample(clips, _crop_grid(p, clips.shape[2], clips.shape[3], self.cfg.crop_size))
        scale = 1 / 255  # x is in 0..255 until the first multiply
        if self.cfg.color:
            saturation = torch.where(p["gray"], 0.0, p["saturation"])
            color_jitter_(x, p["brightness"], p["contrast"], saturation, p["hue"], scale)
            scale = 1.0
            chosen = p["sigma"].nonzero()[:, 0]
            if len(chosen) == len(x):
                x = blur(x, p["sigma"], self.kernel_size)
            elif len(chosen):
                idx = chosen.to(x.device)
                x.index_copy_(0, idx, blur(x[idx], p["sigma"][chosen], self.kernel_size))
        return _normalize(x, self.mean, self.std, scale, out=out)

    def apply(self, clips: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Augment ``clips [N, T, H, W, 3] uint8`` with ``params`` -> ``[N, 3, T, S, S]`` float."""
        n, t = clips.shape[:2]
        size = self.cfg.crop_size
        out = torch.empty(n, 3, t, size, size, device=clips.device)
        step = self.cpu_chunk if clips.device.type == "cpu" else n
        for i in range(0, n, max(step, 1)):  # cache blocking on the CPU; one pass on a GPU
            part = slice(i, i + step)
            self._apply(clips[part], {k: v[part] for k, v in params.items()}, out[part])
        return out

    def forward(self, clips: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``[B, T, H, W, 3] uint8`` -> ``[B, 3, T, S, S]`` float32, normalised."""
        if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[-1] != 3:
            raise ValueError(
                f"clips {tuple(clips.shape)} {clips.dtype} are not allowed: "
                "pass [B, T, H, W, 3] uint8"
            )
        if not self.cfg.enabled:
            return center_crop_normalize(clips, self.cfg.crop_size, self.mean, self.std)
        params = self.sample_params(clips.shape[0], clips.shape[2], clips.shape[3], generator)
        return self.apply(clips, params)


def two_view_augment(
    aug: SpatialAugment, views: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """``views [B, 2, T, H, W, 3] uint8`` -> ``(x, y)``, each ``[B, 3, T, S, S]`` float.

    One batched call for both views; with ``aug.cfg.share_views`` both views of a clip get the
    same spatial parameters, else they draw independently.
    """
    b = views.shape[0]
    flat = views.transpose(0, 1).reshape(2 * b, *views.shape[2:])  # all first views, then second
    if not aug.cfg.enabled:
        out = aug(flat)
    else:
        params = aug.sample_params(
            b if aug.cfg.share_views else 2 * b, *views.shape[3:5], generator
        )
        if aug.cfg.share_views:
            params = {k: torch.cat([v, v]) for k, v in params.items()}
        out = aug.apply(flat, params)
    return out[:b], out[b:]
