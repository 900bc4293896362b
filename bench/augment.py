"""Two-view spatial augmentation throughput: batched ``SpatialAugment`` vs per-clip torchvision.

Both sides see the same uint8 clips (16 frames, 128x171, two views per clip) and one thread
(``torch.set_num_threads(1)``: per-core numbers). The baseline is the usual per-clip CPU
pipeline, ``torchvision.transforms.v2`` on a video tensor ``[T, 3, H, W]`` (so parameters are
clip-consistent): RandomResizedCrop, ColorJitter(0.4, 0.4, 0.4, 0.1) p=0.8, RandomGrayscale(0.2),
GaussianBlur p=0.5, RandomHorizontalFlip, then ToDtype + Normalize. The batched side is the
code the trainer runs: one batch on a GPU (``--device cuda`` to time it there), cache-sized
chunks of ``SpatialAugment.cpu_chunk`` clips on the CPU. Runs in about 15 s.

``--mixed``: the clips cycle through the frame sizes of real stores (170x128, 152x128, portrait
128x170, square 128x128); the batched side gets them zero-padded to 128x170 / 170x128 with their
``sizes`` (as collate hands them over), torchvision each clip at its own size.

    python bench/augment.py --batch 16 --iters 7 [--mixed]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch
from torchvision import tv_tensors
from torchvision.transforms import v2

from sstl.augment.spatial import KINETICS_MEAN, KINETICS_STD, SpatialAugment, two_view_augment
from sstl.config import SpatialConfig

T, H, W = 16, 128, 171
MIXED = [(128, 171), (128, 152), (171, 128), (128, 128)]  # (h, w) of --mixed clips


def torchvision_pipeline(cfg: SpatialConfig, kernel_size: int) -> v2.Compose:
    return v2.Compose(
        [
            v2.RandomResizedCrop(cfg.crop_size, scale=cfg.scale, ratio=cfg.ratio, antialias=True),
            v2.RandomApply(
                [v2.ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue)],
                p=cfg.jitter_prob,
            ),
            v2.RandomGrayscale(cfg.grayscale_prob),
            v2.RandomApply([v2.GaussianBlur(kernel_size, sigma=cfg.blur_sigma)], p=cfg.blur_prob),
            v2.RandomHorizontalFlip(cfg.flip_prob),
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(KINETICS_MEAN, KINETICS_STD),
        ]
    )


def batched_round(
    aug: SpatialAugment, views: torch.Tensor, gen: torch.Generator, sizes: torch.Tensor | None
) -> float:
    """Seconds for one two-view batch through ``two_view_augment``."""
    sync = torch.cuda.synchronize if views.is_cuda else (lambda: None)
    sync()
    start = time.perf_counter()
    x, y = two_view_augment(aug, views, gen, sizes)
    sync()
    assert x.shape == y.shape == (len(views), 3, T, aug.cfg.crop_size, aug.cfg.crop_size)
    return time.perf_counter() - start


def per_clip_round(pipeline: v2.Compose, videos: list[list[tv_tensors.Video]]) -> float:
    """Seconds for the per-clip torchvision pipeline over both views of every clip."""
    start = time.perf_counter()
    for clip in videos:
        out = [pipeline(v).permute(1, 0, 2, 3) for v in clip]  # [T, 3, S, S] -> [3, T, S, S]
    assert out[0].shape[0] == 3
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16, help="clips per batch")
    parser.add_argument("--iters", type=int, default=7, help="timed rounds (batches) per side")
    parser.add_argument("--device", default="cpu", help="device of the batched side")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = per core)")
    parser.add_argument("--mixed", action="store_true", help="clips of mixed frame sizes")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = SpatialConfig()
    aug = SpatialAugment(cfg)
    side = max(H, W)
    views = torch.randint(0, 256, (args.batch, 2, T, side, side, 3), dtype=torch.uint8)
    shapes = [MIXED[i % len(MIXED)] if args.mixed else (H, W) for i in range(args.batch)]
    for v, (h, w) in zip(views, shapes, strict=True):  # zero padding, as collate leaves it
        v[:, :, h:], v[:, :, :, w:] = 0, 0
    views = views[:, :, :, : max(h for h, _ in shapes), : max(w for _, w in shapes)].contiguous()
    sizes = torch.tensor(shapes) if args.mixed else None
    # [B, 2, T, 3, h, w] contiguous at each clip's own size: the baseline's preferred layout
    videos = [
        [tv_tensors.Video(v[:, :h, :w].permute(0, 3, 1, 2).contiguous()) for v in c]
        for c, (h, w) in zip(views, shapes, strict=True)
    ]
    pipeline = torchvision_pipeline(cfg, aug.kernel_size)
    device_views, gen = views.to(args.device), torch.Generator().manual_seed(0)
    batched_round(aug, device_views, gen, sizes), per_clip_round(pipeline, videos[:1])  # warm-up
    # Interleaved rounds; the speedup is the median of per-round ratios, so load from other
    # processes that drifts over the run hits both sides of a ratio alike.
    rounds = [
        (batched_round(aug, device_views, gen, sizes), per_clip_round(pipeline, videos))
        for _ in range(args.iters)
    ]
    batched = args.batch / statistics.median(r[0] for r in rounds)
    per_clip = args.batch / statistics.median(r[1] for r in rounds)
    speedup = statistics.median(r[1] / r[0] for r in rounds)
    result = {
        "batch": args.batch,
        "threads": args.threads,
        "device": args.device,
        "mixed": args.mixed,
        "batched_clips_per_s": round(batched, 2),
        "torchvision_clips_per_s": round(per_clip, 2),
        "speedup": round(speedup, 2),
    }
    print(f"batched SpatialAugment ({args.device}): {batched:8.1f} two-view clips/s")
    print(f"per-clip torchvision v2 (cpu):  {per_clip:8.1f} two-view clips/s")
    print(f"speedup: {speedup:.2f}x (median of per-round ratios; target >= 5x per core)")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
