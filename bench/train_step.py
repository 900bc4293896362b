"""Overhead of the full SSTL step over a bare R3D-18 training step on the same two views.

Both run in this process on the same batch, interleaved (A, B, A, B, ...) so background load hits
both alike; the script prints min and median ms/step of each and the overhead (target <= 10%).

- SSTL: :class:`sstl.train.pretrain.PretrainStep` as ``sstl pretrain`` runs it: batched spatial
  augmentation of both uint8 views on the device, one forward of the 2B clips through backbone +
  projection + playback-rate heads, K memory negatives, InfoNCE + clip-to-video + rate losses,
  backward, SGD + lr schedule, memory-bank update;
- bare: torchvision's ``r3d_18`` (400-way classifier; for ``--arch r3d_tiny`` the narrow backbone
  plus a linear layer) forward + cross-entropy + backward + SGD on the same 2B augmented clips,
  prepared once outside the timing.

The batch is what the loader hands over: windows of ``T + e`` frames cut into two temporal views
with both views' spatial parameters (:class:`sstl.train.batches.PretrainTransform`).

    python bench/train_step.py                          # CPU default: 2 videos (4 clips) 16x112x112
    python bench/train_step.py --device cuda --batch 32 --iters 20
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.video import r3d_18

from sstl.config import (
    MemoryConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    SpatialConfig,
    TemporalConfig,
)
from sstl.models.backbone import build_backbone
from sstl.train.batches import augment_views, random_batch
from sstl.train.distributed import DistEnv
from sstl.train.pretrain import PretrainStep


def bare_model(cfg: ModelConfig) -> nn.Module:
    """The plain supervised network the SSTL step is compared against."""
    if cfg.arch == "r3d_18":
        return r3d_18(weights=None)  # 400-way Kinetics classifier
    backbone, dim = build_backbone(cfg)
    return nn.Sequential(backbone, nn.Linear(dim, 400))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--arch", default="r3d_18", choices=["r3d_18", "r3d_tiny"])
    p.add_argument("--width", type=int, default=16, help="r3d_tiny base width")
    p.add_argument("--batch", type=int, default=2, help="videos per step (2 views each)")
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--height", type=int, default=128, help="stored frame height")
    p.add_argument("--width-px", type=int, default=171, help="stored frame width")
    p.add_argument("--negatives", type=int, default=2048, help="K memory negatives")
    p.add_argument("--videos", type=int, default=9537, help="memory bank rows (UCF101 train)")
    p.add_argument("--iters", type=int, default=3, help="timed steps of each")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps of each first")
    args = p.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    cfg = PretrainConfig(
        model=ModelConfig(arch=args.arch, width=args.width),
        temporal=TemporalConfig(clip_len=args.clip_len),
        spatial=SpatialConfig(crop_size=args.crop),
        memory=MemoryConfig(negatives=args.negatives),
        optim=OptimConfig(batch_size=args.batch, epochs=1),
        run=RunConfig(device=device.type),
    )
    step = PretrainStep(cfg, DistEnv(device=device), args.videos, steps_per_epoch=10**6)
    batch = random_batch(cfg, args.batch, args.height, args.width_px)

    bare = bare_model(cfg.model).to(device)
    opt = torch.optim.SGD(bare.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-6)
    clips = augment_views(step.augment, batch, device)  # the same 2B views, made once
    labels = torch.randint(0, 400, (clips.shape[0],), device=device)
    amp = cfg.run.amp and device.type == "cuda"

    def bare_step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            loss = F.cross_entropy(bare(clips).float(), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed(fn) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return 1000 * (time.perf_counter() - t0)

    times: dict[str, list[float]] = {"sstl": [], "bare": []}
    for i in range(args.warmup + args.iters):
        t_sstl = timed(lambda i=i: step(batch, i))
        t_bare = timed(bare_step)
        if i >= args.warmup:
            times["sstl"].append(t_sstl)
            times["bare"].append(t_bare)
    shape = f"{args.clip_len}x{args.crop}x{args.crop}"
    print(
        f"{device.type} {args.arch}, {args.batch} videos = {2 * args.batch} clips of {shape}, "
        f"K={args.negatives}, threads={torch.get_num_threads()}, {args.iters} timed steps each"
    )
    for name, label in (("bare", f"bare {args.arch} fwd+bwd+SGD"), ("sstl", "full SSTL step")):
        ms = times[name]
        print(
            f"  {label:<26} min {min(ms):9.1f}  median {statistics.median(ms):9.1f} ms/step"
            f"  {[round(t) for t in ms]}"
        )
    # The minimum is the estimate least disturbed by other processes on a shared machine.
    for stat in (min, statistics.median):
        ratio = stat(times["sstl"]) / stat(times["bare"]) - 1
        print(f"  overhead ({stat.__name__}): {100 * ratio:+.1f}% (target <= +10%)")


if __name__ == "__main__":
    main()
