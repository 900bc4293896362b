"""Does the loader keep the GPU fed? Loader-fed pretraining from a real frame store.

1. Writes synthetic videos at Kinetics-like sizes and aspect ratios (640x360, 480x360, 340x256,
   456x256, 320x240 and portrait 360x640; 6-10 s at 25 or 30 fps; moving shapes over moving
   gradients, so x264 has real motion to code) with PyAV, on every core.
2. Extracts them into a frame store as ``sstl extract`` does (``write_store``: short side 128,
   h264) and writes its manifest.
3. Runs ``sstl pretrain`` (the real loop: loader workers, pinned memory, spatial augmentation on
   the device, bf16, SGD, memory bank) once per loader worker count, and reads its metrics: per
   step the time spent waiting for the next batch (``data_s``) and computing (``step_s``). The GPU
   waits on data for ``sum(data_s) / sum(data_s + step_s)`` of the step time, counted after the
   first ``--warmup`` steps; ``epoch_start_wait_s`` is the mean wait of an epoch's first batch.

    python bench/gpu_loader.py --workers 4 8 16 --json loader.json          # on a GPU machine
    python bench/gpu_loader.py --device cpu --smoke --workers 1 2           # smoke test (CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pandas as pd

from sstl.config import StoreConfig
from sstl.data.clips import MANIFEST_COLUMNS
from sstl.data.store import write_store

# (width, height): Kinetics' common sizes, landscape and portrait; "4:3": one aspect ratio (all
# store frames 171x128), for a loader number while the training path cannot batch mixed sizes
# (issue 9: collate stacks whole frames before any crop)
SIZES = {
    "mixed": [(640, 360), (480, 360), (340, 256), (456, 256), (320, 240), (360, 640)],
    "4:3": [(320, 240), (480, 360), (640, 480)],
}
FPS = [25, 30]


def render(index: int, width: int, height: int, frames: int) -> np.ndarray:
    """``[frames, height, width, 3]`` uint8: a drifting colour gradient and three moving discs."""
    rng = np.random.default_rng(index)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(0, 255, size=3).astype(np.float32)
    speed = rng.uniform(-4, 4, size=(3, 2)).astype(np.float32)
    start = rng.uniform(0, 1, size=(3, 2)).astype(np.float32) * (width, height)
    radius = rng.uniform(0.05, 0.15, size=3) * min(width, height)
    out = np.empty((frames, height, width, 3), dtype=np.uint8)
    for t in range(frames):
        grad = (x + y + 3 * t) % 256
        frame = np.stack([grad * 0.6 + base[c] * 0.4 for c in range(3)], axis=-1)
        for k in range(3):
            cx, cy = (start[k] + t * speed[k]) % (width, height)
            disc = (x - cx) ** 2 + (y - cy) ** 2 < radius[k] ** 2
            frame[disc] = 255 - base
        out[t] = frame.astype(np.uint8)
    return out


def make_video(args: tuple[int, Path, float, int, str]) -> dict:
    """Write source video ``index`` and its store file; the manifest row."""
    index, root, scale, frames, aspect = args
    sizes = SIZES[aspect]
    width, height = sizes[index % len(sizes)]
    width, height = 2 * round(width / scale / 2), 2 * round(height / scale / 2)  # even: yuv420p
    fps = FPS[index % len(FPS)]
    src = root / "source" / f"v{index:05d}.mp4"
    src.parent.mkdir(parents=True, exist_ok=True)
    video = render(index, width, height, frames)
    with av.open(str(src), "w") as out:
        stream = out.add_stream("libx264", rate=Fraction(fps))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "23"}
        for rgb in video:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        out.mux(stream.encode(None))
    store_cfg = StoreConfig(short_side=max(16, round(128 / scale)))
    rel = f"v{index:05d}.mp4"
    info = write_store(src, root / "store" / rel, store_cfg)
    return {
        "id": f"v{index:05d}",
        "path": rel,
        "label": -1,
        "class_name": "",
        "split": "train",
        "frames": info.num_frames,
        "fps": info.fps,
        "width": info.width,
        "height": info.height,
        "size": info.size,
        "checksum": "",
        "status": "ok",
        "error": "",
    }


def build_store(
    root: Path, videos: int, scale: float, seconds: tuple[float, float], aspect: str
) -> Path:
    """Source videos, their frame store and the manifest under ``root``; the manifest path."""
    manifest = root / "manifest.csv"
    if manifest.is_file() and len(pd.read_csv(manifest)) == videos:
        return manifest  # built by an earlier run with the same size
    rng = np.random.default_rng(0)
    jobs = [
        (i, root, scale, int(rng.uniform(*seconds) * FPS[i % len(FPS)]), aspect)
        for i in range(videos)
    ]
    tic = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:
        rows = list(pool.map(make_video, jobs, chunksize=4))
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(manifest, index=False)
    mb = sum(r["size"] for r in rows) / 2**20
    sizes = sorted({(r["width"], r["height"]) for r in rows})
    print(
        f"store ({aspect}): {videos} videos, {mb:.0f} MiB, frame sizes {sizes}, built in "
        f"{time.perf_counter() - tic:.0f} s"
    )
    return manifest


def pretrain_config(args: argparse.Namespace, workers: int) -> dict:
    return {
        "model": {"arch": args.arch, "width": 8, "channels_last": args.channels_last},
        "temporal": {"clip_len": args.clip_len, "buffer": 12, "n_drop": 4},
        "spatial": {"crop_size": args.crop},
        "optim": {"batch_size": args.batch, "epochs": 10_000, "warmup_epochs": 0},
        "run": {
            "device": args.device,
            "workers": workers,
            "log_every": 1,
            "save_every": 10**9,  # no periodic saves inside the timed steps
            "max_steps": args.steps,
        },
    }


def run_pretrain(args: argparse.Namespace, manifest: Path, workers: int) -> dict:
    """One ``sstl pretrain`` run with ``workers`` loader workers; its data-wait statistics."""
    run = args.work / f"run-{args.aspect.replace(':', 'x')}-w{workers}"
    state = run / "state"
    if state.exists():
        for f in state.iterdir():  # a fresh run: no resume from an earlier one
            f.unlink()
    run.mkdir(parents=True, exist_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "sstl.cli",
        "pretrain",
        "--cfg",
        json.dumps(pretrain_config(args, workers)),
        "--manifest",
        str(manifest),
        "--store",
        str(manifest.parent / "store"),
        "--out",
        str(run / "weights.pt"),
        "--state-dir",
        str(state),
        "--metrics",
        str(state / "metrics.jsonl"),
    ]
    tic = time.perf_counter()
    with open(run / "pretrain.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False)
    wall = time.perf_counter() - tic
    if proc.returncode != 0:
        tail = (run / "pretrain.log").read_text()[-2000:]
        raise SystemExit(f"sstl pretrain with {workers} workers failed:\n{tail}")
    steps = [json.loads(line) for line in (state / "metrics.jsonl").read_text().splitlines()]
    timed = [s for s in steps if s["step"] > args.warmup]
    data = sum(s["data_s"] for s in timed)
    compute = sum(s["step_s"] for s in timed)
    firsts = [s for i, s in enumerate(steps[1:], 1) if s["epoch"] != steps[i - 1]["epoch"]]
    return {
        "workers": workers,
        "steps_timed": len(timed),
        "data_wait_fraction": data / (data + compute),
        "ms_per_step": 1000 * (data + compute) / len(timed),
        "clips_per_s": 2 * args.batch * len(timed) / (data + compute),
        "epoch_start_wait_s": float(np.mean([s["data_s"] for s in firsts])) if firsts else None,
        "wall_s": wall,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    p.add_argument("--workers", type=int, nargs="+", default=[4, 8, 16])
    p.add_argument("--videos", type=int, default=384)
    p.add_argument("--seconds", type=float, nargs=2, default=(6.0, 10.0), help="video lengths")
    p.add_argument("--batch", type=int, default=32, help="videos per step (2x clips)")
    p.add_argument("--steps", type=int, default=48, help="steps per run")
    p.add_argument("--warmup", type=int, default=8, help="first steps not counted")
    p.add_argument("--arch", default="r3d_18", choices=["r3d_18", "r3d_tiny"])
    p.add_argument("--clip-len", type=int, default=16)
    p.add_argument("--crop", type=int, default=112)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--aspect", default="mixed", choices=sorted(SIZES), help="source shapes")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: frames / 8, 2 s videos")
    p.add_argument("--work", type=Path, default=Path("gpu_check_work"), help="scratch folder")
    p.add_argument("--json", type=Path, help="also write the results to this file")
    args = p.parse_args(argv)
    scale = 8.0 if args.smoke else 1.0
    if args.smoke:
        args.seconds, args.crop = (1.6, 2.4), 14
    data = args.work / f"data-{args.aspect.replace(':', 'x')}-{args.videos}-s{scale:g}"
    manifest = build_store(data, args.videos, scale, tuple(args.seconds), args.aspect)
    results = []
    for workers in args.workers:
        r = run_pretrain(args, manifest, workers)
        results.append(r)
        epoch = f"{r['epoch_start_wait_s']:.3f} s" if r["epoch_start_wait_s"] is not None else "-"
        print(
            f"{workers:>3} workers: GPU waits on data {100 * r['data_wait_fraction']:.1f}% of the "
            f"step time ({r['ms_per_step']:.0f} ms/step, {r['clips_per_s']:.0f} clips/s; "
            f"epoch start waits {epoch})"
        )
    if args.json:
        result = {"device": args.device, "aspect": args.aspect, "runs": results}
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
