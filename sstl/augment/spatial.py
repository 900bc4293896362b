"""Batched, clip-consistent spatial augmentations on the training device (METHOD §3).

Every clip draws one set of parameters (crop box, flip, colour factors, grayscale, blur sigma)
that applies to all of its frames; the two views draw independently unless
``SpatialConfig.share_views``. Everything is vectorised over the batch:

- random resized crop + flip are one bilinear ``F.grid_sample`` per batch, one grid per clip
  (mirrored for flipped clips) shared by all its frames. No antialiasing, like
  torchvision's tensor resize before 0.17 (the largest downscale is 171/112 ~ 1.5);
- colour jitter, grayscale and Gaussian blur are in :mod:`sstl.augment.color` (their formulas
  and where they differ from torchvision are documented there).

Frame sizes may differ within a batch (the store keeps each video's aspect ratio):
:func:`sstl.data.clips.collate` zero-pads to the largest height and width and gives each clip's
real ``sizes``. Crop boxes are drawn from a clip's own size (in the loader worker), its grid reads
only its own pixels (:mod:`sstl.augment.crop`), and the centre crop processes each size on its
own, so a padded clip comes out as it would alone. Batches of one size run the same code as
before any of this existed, bit for bit.

On the CPU the batch runs in chunks of ``cpu_chunk`` clips so the ~40 passes over the pixels
stay in cache (1 clip measured fastest); on a GPU it is one chunk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sstl.augment.color import blur, color_jitter_, jitter_factors_
from sstl.augment.crop import check_sizes, crop_boxes, crop_grid, resample
from sstl.config import SpatialConfig

# blur and color_jitter_ are re-exported: they lived here before sstl.augment.color
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
STORE_SHORT_SIDE, PAPER_CROP = 128, 112  # frames are stored at short side 128 for 112 crops


def _normalize(
    x: Tensor,
    mean: Sequence[float],
    std: Sequence[float],
    scale: float = 1.0,
    out: Tensor | None = None,
) -> Tensor:
    """``x [N, 3, T, S, S]`` (any strides; ``x * scale`` in [0, 1]) -> normalised, contiguous."""
    shape = (1, 3, 1, 1, 1)
    shift = torch.tensor([m / scale for m in mean], device=x.device).view(shape)
    inv = torch.tensor([scale / v for v in std], device=x.device).view(shape)
    out = _empty(x.shape, x.device) if out is None else out
    return torch.sub(x, shift, out=out).mul_(inv)


def _empty(shape: Sequence[int], device: torch.device) -> Tensor:
    """A float32 tensor for a batch output. On the CPU it comes from numpy, whose allocator asks
    the kernel for transparent huge pages: first-touch page faults of a fresh batch otherwise
    cost more than the augmentation itself (5x measured on a VM)."""
    if device.type != "cpu":
        return torch.empty(shape, device=device)
    return torch.from_numpy(np.empty(shape, dtype=np.float32))


def _one_size(sizes: Tensor | None, height: int, width: int) -> bool:
    """True when every clip fills the ``height x width`` canvas (``sizes`` None or all equal)."""
    return sizes is None or bool((sizes.cpu() == torch.tensor([height, width])).all())


def center_crop_normalize(
    clips: Tensor,
    size: int,
    mean: Sequence[float] = KINETICS_MEAN,
    std: Sequence[float] = KINETICS_STD,
    sizes: Tensor | None = None,
) -> Tensor:
    """Evaluation transform: ``[..., T, H, W, 3] uint8`` -> ``[..., 3, T, size, size]`` float.

    Frames are stored with short side 128 for 112 crops (METHOD §1), so at the paper's size this
    is a plain centre crop. Otherwise the short side is first resized (bilinear, antialiased) to
    ``round(size * 128 / 112)``, keeping the paper's crop fraction. Then normalise.

    ``sizes [B, 2]`` (int): for ``clips [B, ..., T, H, W, 3]`` zero-padded to a common canvas
    (:func:`sstl.data.clips.collate`), item ``b``'s real (h, w), shared by all its clips. Items
    are processed in groups of one size, each exactly as if it were alone and unpadded.
    """
    *lead, t, h, w, _ = clips.shape
    if _one_size(sizes, h, w):
        return _center_crop(clips, size, mean, std)
    if not lead:
        raise ValueError(f"sizes need a batch dimension: clips are {tuple(clips.shape)}")
    sizes = sizes.cpu()
    check_sizes(sizes, lead[0], h, w)
    out = _empty((*lead, 3, t, size, size), clips.device)
    for hw in torch.unique(sizes, dim=0).tolist():
        idx = (sizes == torch.tensor(hw)).all(1).nonzero()[:, 0].to(clips.device)
        group = clips.index_select(0, idx)[..., : hw[0], : hw[1], :]
        out.index_copy_(0, idx, _center_crop(group, size, mean, std))
    return out


def _center_crop(clips: Tensor, size: int, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    """:func:`center_crop_normalize` of clips that fill their frames."""
    *lead, t, h, w, _ = clips.shape
    short = round(size * STORE_SHORT_SIDE / PAPER_CROP)
    # the long side as torchvision's resize computes it (truncated)
    nh, nw = (short, int(w * short / h)) if h <= w else (int(h * short / w), short)
    x = clips.reshape(-1, t, h, w, 3).permute(0, 4, 1, 2, 3)  # [N, 3, T, H, W]
    if (nh, nw) != (h, w):
        x = F.interpolate(x.flatten(1, 2).float(), size=(nh, nw), mode="bilinear", antialias=True)
        x = x.view(-1, 3, t, nh, nw)
    top, left = round((nh - size) / 2), round((nw - size) / 2)  # torchvision's center_crop
    x = x[..., top : top + size, left : left + size]
    return _normalize(x, mean, std, scale=1 / 255).reshape(*lead, 3, t, size, size)


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
        cpu_chunk: int = 1,
    ) -> None:
        super().__init__()
        self.cfg, self.cpu_chunk = cfg, max(cpu_chunk, 1)
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
        top, left, ch, cw = crop_boxes(n, height, width, cfg, gen)

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

    def _apply(self, clips: Tensor, grid: Tensor, f: Tensor, frames: Tensor) -> Tensor:
        """One chunk: ``clips [n, T, H, W, 3] uint8`` -> ``[n, 3, T, S, S]`` in [0, 1], a view.

        ``f [5, n]`` (CPU): brightness, contrast, saturation (0: grayscale), hue (turns), blur
        sigma (0: no blur).
        """
        y = resample(clips, grid, frames)  # [n, T, 3, S, S] in 0..255
        if not self.cfg.color:
            return y.div_(255).transpose(1, 2)
        jitter_factors_(
            y.transpose(1, 2), f[:4], scale=1 / 255
        )  # brightness also maps 0..255 to 0..1
        chosen = f[4].nonzero()[:, 0]
        if len(chosen) == len(y):  # every clip of the chunk drew a blur (1-clip chunks: often)
            y = blur(y, f[4], self.kernel_size)
        elif len(chosen):
            idx = chosen.to(y.device)
            y.index_copy_(0, idx, blur(y.index_select(0, idx), f[4][chosen], self.kernel_size))
        return y.transpose(1, 2)

    def apply(
        self, clips: Tensor, params: dict[str, Tensor], sizes: Tensor | None = None
    ) -> Tensor:
        """Augment ``clips [N, T, H, W, 3] uint8`` (any strides) with ``params`` ->
        ``[N, 3, T, S, S]`` float, normalised.

        ``sizes [N, 2]`` (int, CPU): each clip's real (h, w) inside the zero-padded canvas
        (:func:`sstl.data.clips.collate`); the crop boxes in ``params`` were drawn from those
        sizes. None: every clip fills the canvas. A chunk reads only its clips' largest (h, w),
        so a one-clip CPU chunk samples exactly as the clip alone would; padding is never read.
        """
        n, t, h, w, _ = clips.shape
        size, dev = self.cfg.crop_size, clips.device
        step = self.cpu_chunk if dev.type == "cpu" else n
        chunks = [slice(i, i + step) for i in range(0, n, step)]
        if _one_size(sizes, h, w):
            canvas = [(h, w)] * len(chunks)
            grid = crop_grid(params, h, w, size).to(dev)
        else:
            sizes = sizes.cpu()
            check_sizes(sizes, n, h, w)
            canvas = [tuple(int(v) for v in sizes[part].amax(0)) for part in chunks]
            per_clip = torch.tensor(
                [c for c, part in zip(canvas, chunks, strict=True) for _ in range(n)[part]]
            )
            grid = crop_grid(params, per_clip[:, 0], per_clip[:, 1], size, sizes).to(dev)
        saturation = torch.where(params["gray"], 0.0, params["saturation"])
        keys = ("brightness", "contrast", "saturation", "hue", "sigma")
        factors = torch.stack([saturation if k == "saturation" else params[k] for k in keys])
        out = _empty((n, 3, t, size, size), dev)
        frames = torch.empty(min(step, n) * t * h * w * 3, device=dev)  # reused by every chunk
        for part, (ch, cw) in zip(chunks, canvas, strict=True):
            # cache blocking on the CPU; a single pass on a GPU
            x = self._apply(clips[part, :, :ch, :cw], grid[part], factors[:, part], frames)
            _normalize(x, self.mean, self.std, out=out[part])
        return out

    def forward(
        self,
        clips: Tensor,
        generator: torch.Generator | None = None,
        sizes: Tensor | None = None,
    ) -> Tensor:
        """``[B, T, H, W, 3] uint8`` -> ``[B, 3, T, S, S]`` float32, normalised.

        ``sizes [B, 2]``: each clip's real (h, w) in a zero-padded batch (None: all H x W); the
        parameters are drawn from each clip's own size.
        """
        if clips.dtype != torch.uint8 or clips.dim() != 5 or clips.shape[-1] != 3:
            raise ValueError(
                f"clips {tuple(clips.shape)} {clips.dtype} are not allowed: "
                "pass [B, T, H, W, 3] uint8"
            )
        if not self.cfg.enabled:
            return center_crop_normalize(clips, self.cfg.crop_size, self.mean, self.std, sizes)
        b, _, h, w, _ = clips.shape
        params = self._sample_sized(b, h, w, generator, sizes)
        return self.apply(clips, params, sizes)

    def _sample_sized(
        self,
        n: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        sizes: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """:meth:`sample_params` for ``n`` clips of the canvas ``height x width``, or of their own
        ``sizes [n, 2]`` (one draw per clip, in order) when those differ from the canvas."""
        if _one_size(sizes, height, width):
            return self.sample_params(n, height, width, generator)
        check_sizes(sizes, n, height, width)
        draws = [self.sample_params(1, int(h), int(w), generator) for h, w in sizes.tolist()]
        return {k: torch.cat([d[k] for d in draws]) for k in draws[0]}


def two_view_augment(
    aug: SpatialAugment,
    views: Tensor,
    generator: torch.Generator | None = None,
    sizes: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """``views [B, 2, T, H, W, 3] uint8`` -> ``(x, y)``, each ``[B, 3, T, S, S]`` float.

    One batched call per view (read in place, no copy of the uint8 batch); with
    ``aug.cfg.share_views`` both views of a clip get the same spatial parameters, else they
    draw independently. ``sizes [B, 2]``: each video's real (h, w) in a zero-padded batch.
    """
    if views.dtype != torch.uint8 or views.dim() != 6 or views.shape[1] != 2:
        raise ValueError(
            f"views {tuple(views.shape)} {views.dtype} are not allowed: "
            "pass [B, 2, T, H, W, 3] uint8"
        )
    if not aug.cfg.enabled:
        return aug(views[:, 0], sizes=sizes), aug(views[:, 1], sizes=sizes)
    b, h, w = views.shape[0], views.shape[3], views.shape[4]
    params = [aug._sample_sized(b, h, w, generator, sizes)]
    second = params[0] if aug.cfg.share_views else aug._sample_sized(b, h, w, generator, sizes)
    params.append(second)
    return aug.apply(views[:, 0], params[0], sizes), aug.apply(views[:, 1], params[1], sizes)
