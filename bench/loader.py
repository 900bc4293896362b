"""Loader throughput per core: the frame store against decoding the source videos.

Both sides produce the same thing for the same random windows of T + e = 28 consecutive frames
of the same real videos: uint8 frames with the short side at 128.

- store: ``StoreReader(path).read(window)`` (a fresh reader per window, as ClipDataset opens
  one per item), for each store codec.
- baseline (the peers' loader, pytorchvideo-style): open the SOURCE with PyAV, decode from the
  first frame up to the window's end, and convert + resize each window frame with
  ``frame.to_ndarray(width=, height=)`` (which builds a new swscale context per frame).

One process, one thread (torch.set_num_threads(1), one decoder thread), so numbers are per
core. Usage: ``python bench/loader.py [--videos DIR] [--iters N]``.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch

from sstl.config import StoreConfig
from sstl.data.store import StoreReader, store_ext, write_store
from sstl.data.video import scaled_size

WINDOW = 28  # T = 16 + e = 12
SHORT_SIDE = 128


def default_videos() -> Path:
    root = Path(__file__).resolve().parent.parent
    shared = Path(os.environ.get("SSTL_SHARED", root.parent / "shared"))
    return shared / "videos" / "ucf101"


def baseline_window(path: Path, start: int) -> np.ndarray:
    """Decode ``path`` from frame 0 to ``start + WINDOW - 1``; resize the window frames."""
    out = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        width, height = scaled_size(stream.width, stream.height, SHORT_SIDE)
        for i, frame in enumerate(container.decode(stream)):
            if i >= start:
                out.append(frame.to_ndarray(width=width, height=height, format="rgb24"))
            if i == start + WINDOW - 1:
                break
    return np.stack(out)


def time_per_window(fn, windows: list[tuple[int, int]]) -> float:
    """Mean CPU seconds per call of ``fn(video, start)`` over ``windows`` (after a warm-up).

    Process CPU time, not wall time: with one thread it is the per-core cost, and it does not
    count time the process waited for a core on a busy machine.
    """
    fn(*windows[0])
    tic = time.process_time()
    for video, start in windows:
        fn(video, start)
    return (time.process_time() - tic) / len(windows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", type=Path, default=default_videos(), help="folder of videos")
    ap.add_argument("--iters", type=int, default=200, help="random windows per loader")
    ap.add_argument("--seed", type=int, default=0, help="seed of the random windows")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    sources = sorted(p for p in args.videos.rglob("*") if p.suffix.lower() in (".avi", ".mp4"))
    if not sources:
        print(f"no .avi/.mp4 videos under {args.videos}: pass --videos DIR", file=sys.stderr)
        return 2
    source_bytes = sum(p.stat().st_size for p in sources)
    rows = []
    with tempfile.TemporaryDirectory(prefix="sstl-bench-") as tmp:
        stores: dict[str, list[Path]] = {}
        counts: list[int] = []
        raw_bytes = 0
        write_s: dict[str, float] = {}
        for codec in ("h264", "jpeg"):
            cfg = StoreConfig(codec=codec, short_side=SHORT_SIDE)
            tic = time.perf_counter()
            paths = [Path(tmp) / f"{i}{store_ext(codec)}" for i in range(len(sources))]
            infos = [write_store(s, d, cfg) for s, d in zip(sources, paths, strict=True)]
            write_s[codec] = time.perf_counter() - tic
            stores[codec], counts = paths, [info.num_frames for info in infos]
            raw_bytes = sum(i.num_frames * i.width * i.height * 3 for i in infos)
        rng = random.Random(args.seed)
        windows = []
        for _ in range(args.iters):
            v = rng.randrange(len(sources))
            windows.append((v, rng.randrange(max(1, counts[v] - WINDOW + 1))))
        base = time_per_window(lambda v, s: baseline_window(sources[v], s), windows)
        for codec, paths in stores.items():
            sec = time_per_window(
                lambda v, s, paths=paths: StoreReader(paths[v]).read(range(s, s + WINDOW)),
                windows,
            )
            size = sum(p.stat().st_size for p in paths) / source_bytes
            rows.append((codec, size, sec, base, write_s[codec]))
    print(
        f"{len(sources)} videos from {args.videos}, {args.iters} random {WINDOW}-frame windows, "
        f"short side {SHORT_SIDE}, 1 thread"
    )
    print(
        f"{'store':<6} {'size/src':>8} {'store ms':>9} {'clips/s':>8} {'base ms':>8} "
        f"{'clips/s':>8} {'speed-up':>8} {'write s':>8}"
    )
    for codec, size, sec, base_sec, wsec in rows:
        print(
            f"{codec:<6} {size:>7.2f}x {sec * 1e3:>9.2f} {1 / sec:>8.1f} {base_sec * 1e3:>8.2f} "
            f"{1 / base_sec:>8.1f} {base_sec / sec:>7.1f}x {wsec:>8.2f}"
        )
    print(
        "target: speed-up >= 4x; raw uint8 frames would be "
        f"{raw_bytes / source_bytes:.1f}x the source size"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
