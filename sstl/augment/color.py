"""Batched, clip-consistent colour augmentations and blur for :mod:`sstl.augment.spatial`.

Each op takes per-clip factors ``[N]`` that apply to all frames of a clip, on clips
``[N, 3, T, H, W]`` float in [0, 1]:

- colour ops are ``torchvision.transforms.v2.functional``'s formulas (blends, per-frame contrast
  mean, HSV hue) as in-place arithmetic; the hue rotation needs no HSV tensor and no masks;
- Gaussian blur is a separable depthwise convolution, reflect padding, one kernel per clip.

Choices that differ from torchvision: the four jitter ops run in one fixed order (brightness,
contrast, hue, saturation: one of the orders ColorJitter draws from); grayscale is applied as
saturation factor 0 (equal to converting after saturation); each blur kernel is cut at 3 sigma
(< 0.3% of its weight).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["blur", "color_jitter_", "jitter_factors_"]

_GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights


def _gray(x: Tensor) -> Tensor:
    """Luma ``[N, T, H, W]`` of ``x [N, 3, T, H, W]`` (torchvision's weights), a new tensor."""
    r, g, b = x.unbind(1)
    return torch.mul(r, _GRAY[0]).add_(g, alpha=_GRAY[1]).add_(b, alpha=_GRAY[2])


def _hue_(x: Tensor, shift: Tensor) -> None:
    """Rotate the HSV hue of ``x [N, 3, T, H, W]`` in [0, 1] by ``shift [N]`` turns, in place.

    Value (max) and chroma (max - min) do not change, so each output channel is
    ``max - chroma * f(k)``, ``f`` the trapezoid torchvision's hsv_to_rgb evaluates at the
    shifted hue. ``ceil(max - c)`` (0 iff c is the max) selects the sector instead of masks.
    """
    r, g, b = x.unbind(1)
    mx = torch.maximum(r, g)
    torch.maximum(mx, b, out=mx)
    cr = torch.minimum(r, g)
    torch.minimum(cr, b, out=cr)
    torch.sub(mx, cr, out=cr)  # chroma
    not_r, not_g = torch.sub(mx, r).ceil_(), torch.sub(mx, g).ceil_()
    # chroma * hue in sixths: r max: g - b; g max: b - r + 2cr; b max: r - g + 4cr, written as
    # (g - b) + not_r * ((3b - sum + 2cr) + not_g * (3r - sum + 2cr))
    q = torch.add(r, g).add_(b).sub_(cr, alpha=2)  # sum - 2cr
    inner = torch.mul(r, 3).sub_(q).mul_(not_g).add_(b, alpha=3).sub_(q)
    hue = torch.sub(g, b).addcmul_(not_r, inner)
    cr6 = cr.mul_(6).clamp_(min=1e-12)  # 6 chroma; the floor only matters for gray pixels
    hue.div_(cr6).add_(shift.view(-1, *([1] * (hue.dim() - 1))))  # turns, in [-2/3, 4/3)
    base = torch.add(mx, cr6, alpha=-1 / 3, out=mx)  # max - 2 chroma
    # all channels at once: channel = max - 2 chroma + 6 chroma clamp(a, 1/6, 1/3), a the
    # distance (turns) of the hue from the channel's peak; the offsets keep frac's input > 0
    offsets = torch.tensor([2.0, 5 / 3, 4 / 3], dtype=x.dtype, device=x.device)
    a = hue.unsqueeze(1) + offsets.view(1, 3, *([1] * (hue.dim() - 1)))
    a.frac_().sub_(0.5).abs_().clamp_(1 / 6, 1 / 3).mul_(cr6.unsqueeze(1))
    torch.add(a, base.unsqueeze(1), out=x)


def color_jitter_(
    x: Tensor, brightness: Tensor, contrast: Tensor, saturation: Tensor, hue: Tensor
) -> Tensor:
    """Colour jitter of ``x [N, 3, T, H, W]`` float in [0, 1] with per-clip factors ``[N]``.

    In place (x is an intermediate of the batch pipeline); returns x. Factors (1, 1, 1, 0) leave
    a clip unchanged; saturation 0 is grayscale. Order: brightness, contrast, hue, saturation.
    """
    return jitter_factors_(x, torch.stack([brightness, contrast, saturation, hue]).float().cpu())


def jitter_factors_(x: Tensor, f: Tensor, scale: float = 1.0) -> Tensor:
    """color_jitter_ with factors ``f [4, N]`` on the CPU, input ``x * scale`` in [0, 1].

    The CPU copy of the factors decides which ops and clamps a chunk needs (a blend with a
    factor <= 1 stays in [0, 1]). In-place mul/add: addcmul with broadcast operands is ~10x
    slower on the CPU.
    """
    n, _, t = x.shape[:3]
    b, c, s, hue = f.to(x.device).view(4, n, 1, 1, 1, 1).unbind(0)
    x.mul_(b * scale)
    if bool((f[0] > 1).any()):
        x.clamp_(max=1)
    if bool((f[1] != 1).any()):
        mean = (x.mean(dim=(-2, -1)) * x.new_tensor(_GRAY).view(1, 3, 1)).sum(1)  # [N, T]
        x.mul_(c).add_((1 - c) * mean.view(n, 1, t, 1, 1))
        if bool((f[1] > 1).any()):
            x.clamp_(0, 1)
    if bool((f[3] != 0).any()):
        _hue_(x, hue.view(n))
    if bool((f[2] != 1).any()):
        gray = _gray(x).mul_(1 - s.view(n, 1, 1, 1))  # before x changes
        x.mul_(s).add_(gray.unsqueeze(1))
        if bool((f[2] > 1).any()):
            x.clamp_(0, 1)
    return x


def _blur_planes(planes: Tensor, sigma: Tensor, max_radius: int) -> Tensor:
    """Blur ``planes [P, H, W]`` with per-plane ``sigma [P]`` (CPU); a new tensor.

    torchvision's ``gaussian_blur`` (reflect padding), each kernel cut at 3 sigma and at most
    ``max_radius``, as a separable depthwise convolution.
    """
    radius = min(max_radius, math.ceil(3 * float(sigma.max())))
    d = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (d / sigma.double()[:, None]) ** 2)
    k = k * (d.abs() <= (3 * sigma.double()).ceil()[:, None])
    k = (k / k.sum(1, keepdim=True)).float().to(planes.device)  # [P, 2r+1]
    p, size = len(planes), 2 * radius + 1
    padded = F.pad(planes[None], (radius,) * 4, mode="reflect")
    if padded.device.type == "cpu" and torch.backends.mkldnn.is_available():
        # oneDNN's blocked layout through both passes: one reorder each way, not two (~12%)
        padded = padded.to_mkldnn()
    out = F.conv2d(padded, k.view(p, 1, 1, size), groups=p)
    out = F.conv2d(out, k.view(p, 1, size, 1), groups=p)
    return (out.to_dense() if out.is_mkldnn else out)[0]


def blur(x: Tensor, sigma: Tensor, kernel_size: int) -> Tensor:
    """Gaussian blur of ``x [N, ..., H, W]`` float with per-clip ``sigma [N]`` (> 0) and at
    most ``kernel_size`` taps; a new tensor."""
    planes = x.reshape(-1, *x.shape[-2:])
    per_plane = sigma.cpu().repeat_interleave(len(planes) // len(x))
    return _blur_planes(planes, per_plane, kernel_size // 2).view(x.shape)
