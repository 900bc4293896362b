"""Loader throughput per core: the frame store against decoding the source videos.

Both sides produce the same thing for the same random windows of T + e = 28 consecutive frames
of the same real videos: uint8 frames with the short side at 128.

- store: ``StoreReader(path).read(window)`` (a fresh reader per window, as ClipDataset opens
  one per item), for each store codec.
- baseline (the peers' loader, pytorchvideo-style): open the SOURCE with PyAV, decode from the
  first frame up to the window's end, and convert + resize each window frame with
  ``frame.to_ndarray(width=, height=)`` (which builds a new swscale context per frame).

The loader itself (``ClipDataset`` + ``collate``, random 28-frame windows in batches of
``--batch``) is then timed on two sets of h264 store files: one frame size (the UCF101 samples,
all stored 170x128) and mixed sizes (those, the HMDB51 samples at 152x128, and generated portrait,
square, 2x2-pixel and one-frame videos), where collate zero-pads each batch to its largest frame.

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
import pandas as pd
import torch

from sstl.config import StoreConfig
from sstl.data.clips import ClipDataset, collate
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


# generated shapes the real samples lack: name -> (frames, height, width)
ODD = {
    "portrait": (120, 320, 240),
    "square": (120, 256, 256),
    "tiny": (120, 2, 2),
    "one": (1, 48, 80),
}


def write_odd(folder: Path) -> list[Path]:
    """Encode the ODD videos (a random texture sliding a pixel per frame) as h264 .mp4."""
    rng = np.random.default_rng(0)
    out = []
    for name, (t, h, w) in ODD.items():
        path = folder / f"{name}.mp4"
        texture = rng.integers(0, 256, (h + t, w + t, 3), dtype=np.uint8)
        with av.open(str(path), "w") as container:
            stream = container.add_stream("libx264", rate=25)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            for i in range(t):
                frame = av.VideoFrame.from_ndarray(texture[i : i + h, i : i + w], format="rgb24")
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        out.append(path)
    return out


def loader_rate(stores: list[Path], iters: int, batch: int, seed: int) -> tuple[float, float, set]:
    """CPU seconds per clip of ClipDataset (random WINDOW-frame windows) + collate, in shuffled
    batches of ``batch`` until ``iters`` clips; of that, collate's share (the zero padding of a
    mixed batch); and the frame sizes of the batches."""
    infos = [StoreReader(p) for p in stores]
    rows = pd.DataFrame(
        {"id": [p.stem for p in stores], "path": [str(p) for p in stores], "label": 0,
         "frames": [r.num_frames for r in infos], "status": "ok"}
    )  # fmt: skip
    dataset = ClipDataset(rows, "/", mode="window", window=WINDOW, seed=seed)
    order = np.random.default_rng(seed).integers(0, len(dataset), iters)
    collate([dataset[int(order[0])]])  # warm-up
    sizes, collate_s = set(), 0.0
    tic = time.process_time()
    for start in range(0, iters, batch):
        samples = [dataset[int(i)] for i in order[start : start + batch]]
        mark = time.process_time()
        out = collate(samples)
        collate_s += time.process_time() - mark
        sizes.update(map(tuple, out["sizes"].tolist()))
    return (time.process_time() - tic) / iters, collate_s / iters, sizes


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
    ap.add_argument("--batch", type=int, default=8, help="clips per collated batch")
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
        # the loader on one frame size and on mixed sizes (h264 stores)
        cfg = StoreConfig(short_side=SHORT_SIDE)
        shared = args.videos.parent if args.videos.name == "ucf101" else args.videos
        mixed_src = sorted(p for p in shared.rglob("*") if p.suffix.lower() in (".avi", ".mp4"))
        mixed_src += write_odd(Path(tmp))
        sets: dict[str, list[Path]] = {"one size": stores["h264"], "mixed sizes": []}
        for i, src in enumerate(mixed_src):
            dst = Path(tmp) / f"mixed_{i}.mp4"
            write_store(src, dst, cfg)
            sets["mixed sizes"].append(dst)
        loader = {
            name: loader_rate(paths, args.iters, args.batch, args.seed)
            for name, paths in sets.items()
        }
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
    print(
        f"\nloader: ClipDataset + collate, random {WINDOW}-frame windows, batches of "
        f"{args.batch}, h264 store, 1 thread (CPU time)"
    )
    print(
        f"{'set':<12} {'videos':>6} {'sizes (h x w)':<44} {'ms/clip':>8} {'clips/s':>8} "
        f"{'collate ms':>10}"
    )
    for name, (sec, coll, sizes) in loader.items():
        shown = ", ".join(f"{h}x{w}" for h, w in sorted(sizes))
        print(
            f"{name:<12} {len(sets[name]):>6} {shown:<44} {sec * 1e3:>8.2f} {1 / sec:>8.1f} "
            f"{coll * 1e3:>10.3f}"
        )
    one, mixed = loader["one size"][0], loader["mixed sizes"][0]
    print(f"mixed / one size: {one / mixed:.2f}x the clips/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
