"""Pretraining throughput on one GPU: clips/s and model FLOPs utilisation (MFU) of the SSTL step.

Runs the real step (:class:`sstl.train.pretrain.PretrainStep`: spatial augmentation on the
device, one bf16-autocast forward of both views, memory negatives, all losses, backward, SGD,
memory update) on synthetic uint8 frames already on the device, so the number is the model side
alone (the loader is benchmarked by ``bench/loader.py``). MFU = clips/s x model FLOPs per clip
(forward + backward, counted once at start with ``torch.utils.flop_counter.FlopCounterMode``:
241 GFLOP for R3D-18 at 16x112x112, forward 81.4) / the device's dense bf16 peak (H100 and H200
SXM: 989 TFLOP/s).

Under ``torchrun`` it runs the same step as DDP (the training code's process group: NCCL on GPUs,
gloo on CPUs; SyncBN, gathered losses); ``--batch`` is then per rank and rank 0 reports the
job's total clips/s. ``bench/gpu_check.sh`` runs the variants the issue asks for.

    python bench/gpu_pretrain.py --batch 32 --steps 30     # r3d_18, 32 videos = 64 clips a step
    python bench/gpu_pretrain.py --batch 32 --compile --channels-last
    torchrun --standalone --nproc-per-node=2 bench/gpu_pretrain.py --batch 32   # DDP, 2 ranks
    python bench/gpu_pretrain.py --device cpu --batch 1 --steps 1 --crop 64   # smoke test
"""

from __future__ import annotations

import argparse
import json
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from sstl.config import (
    MemoryConfig,
    ModelConfig,
    OptimConfig,
    PretrainConfig,
    RunConfig,
    SpatialConfig,
    TemporalConfig,
)
from sstl.models.sstl import unwrap
from sstl.train.batches import random_batch
from sstl.train.distributed import cleanup, init_distributed
from sstl.train.pretrain import PretrainStep

# Dense (no sparsity) bf16 tensor-core peaks in FLOP/s, matched against the device name.
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12}


def model_flops_per_clip(model: torch.nn.Module, clip: torch.Tensor) -> float:
    """Forward + backward FLOPs of one clip ``[1, 3, T, S, S]`` as FlopCounterMode counts them."""
    counter = FlopCounterMode(display=False)
    with counter:
        out = model(clip)
        (out["proj"].sum() + (out["rate"].sum() if out["rate"] is not None else 0)).backward()
    model.zero_grad(set_to_none=True)
    return float(counter.get_total_flops())


def _gpus_used(env) -> int:
    if env.device.type != "cuda":
        return 1
    return min(env.world_size, torch.cuda.device_count())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    p.add_argument("--arch", default="r3d_18", choices=["r3d_18", "r3d_tiny"])
    p.add_argument("--batch", type=int, default=32, help="videos per step (2x clips)")
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, help="untimed steps first (default 5 on GPU, 0 on CPU)")
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--height", type=int, default=128, help="stored frame height")
    p.add_argument("--width", type=int, default=171, help="stored frame width (K400 4:3)")
    p.add_argument("--videos", type=int, help="memory bank rows (default: K400's 240k on GPU)")
    p.add_argument("--negatives", type=int, default=2048)
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true", help="channels_last_3d memory format")
    p.add_argument("--no-amp", action="store_true", help="fp32 instead of bf16 autocast")
    p.add_argument("--peak-tflops", type=float, help="override the device's bf16 peak")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args()

    env = init_distributed(args.device)  # one process, or the ranks torchrun started
    device = env.device
    torch.backends.cudnn.benchmark = True
    cfg = PretrainConfig(
        model=ModelConfig(arch=args.arch, width=16, channels_last=args.channels_last),
        temporal=TemporalConfig(clip_len=args.clip_len),
        spatial=SpatialConfig(crop_size=args.crop),
        memory=MemoryConfig(negatives=args.negatives),
        optim=OptimConfig(batch_size=args.batch * env.world_size, epochs=1),
        run=RunConfig(amp=not args.no_amp, device=device.type),
    )
    videos = args.videos or (240_000 if device.type == "cuda" else 1024)
    step_fn = PretrainStep(cfg, env, num_videos=max(videos, 2 * args.batch), steps_per_epoch=10**6)
    clip = torch.randn(1, 3, args.clip_len, args.crop, args.crop, device=device)
    flops = model_flops_per_clip(unwrap(step_fn.method.encoder), clip)
    if args.compile:
        step_fn.method.encoder = torch.compile(step_fn.method.encoder)
    batch = random_batch(cfg, args.batch, args.height, args.width)
    batch["frames"] = batch["frames"].to(device)  # already on the GPU: time the model side only

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    warmup = args.warmup if args.warmup is not None else (5 if device.type == "cuda" else 0)
    for step in range(warmup):
        step_fn(batch, step)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for step in range(warmup, warmup + args.steps):
        logs = step_fn(batch, step)
    sync()
    seconds = (time.perf_counter() - t0) / args.steps

    cleanup()
    if not env.is_main:
        return
    clips_per_s = 2 * args.batch * env.world_size / seconds  # the whole job's
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    peak = args.peak_tflops * 1e12 if args.peak_tflops else None
    peak = peak or next((v for k, v in PEAK_BF16.items() if k in name), None)
    result = {
        "device": name,
        "arch": args.arch,
        "world_size": env.world_size,
        "gpus": torch.cuda.device_count() if device.type == "cuda" else 0,
        "batch_videos": args.batch * env.world_size,
        "clips_per_step": 2 * args.batch * env.world_size,
        "input": f"{args.clip_len}x{args.crop}x{args.crop}",
        "compile": args.compile,
        "channels_last": args.channels_last,
        "amp_bf16": not args.no_amp and device.type == "cuda",
        "ms_per_step": 1000 * seconds,
        "clips_per_s": clips_per_s,
        "gflop_per_clip_fwd_bwd": flops / 1e9,
        "achieved_tflops": clips_per_s * flops / 1e12,
        # per GPU: ranks sharing one GPU (``gpus`` < ``world_size``) share its peak
        "mfu": clips_per_s * flops / (peak * _gpus_used(env)) if peak else None,
        "peak_mem_gib": torch.cuda.max_memory_allocated(device) / 2**30
        if device.type == "cuda"
        else None,
        "last_loss": logs["loss_total"],
    }
    mfu = f"{100 * result['mfu']:.1f}%" if result["mfu"] is not None else "n/a (unknown peak)"
    print(
        f"{name} {args.arch} {result['input']} x{env.world_size} ranks, batch "
        f"{result['batch_videos']} videos ({result['clips_per_step']} clips), "
        f"compile={args.compile}, channels_last={args.channels_last}: "
        f"{result['ms_per_step']:.1f} ms/step, {clips_per_s:.1f} clips/s, "
        f"{result['achieved_tflops']:.1f} TFLOP/s ({flops / 1e9:.1f} GFLOP/clip fwd+bwd), "
        f"MFU {mfu}"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
