"""The embedded synthetic dataset: real video files whose classes are defined by MOTION only.

One textured object moves over a plain static background; the class is the motion (``MOTIONS``).
All a single frame shows is drawn per video independently of the class (colour, size, orientation,
position), and motion varies within a class (speed +-15%, phase), so a model must learn temporal
features.

The look is chosen so that SSTL's instance discrimination cannot tell two videos apart more easily
by appearance than by motion. A per-video cue that the two augmented views of a clip share, but
that says nothing about the class, is what contrastive pretraining learns first; on a 192-video
set it crowds out motion (measured: with 4 shapes x 3 colours x 3 textures x 3 textured backgrounds
the pretrained features retrieved the same LOOK, not the same class, at chance-level class top-1).
So every appearance factor that varies is one an SSTL augmentation scrambles between the views:
colour (6 hues: the hue jitter, up to half the hue circle in the demo config, and grayscale),
position (random resized crop), size (crop zoom); a random-init network still latches onto them,
which is why the demo can show what pretraining adds. Shape, texture and background, which no
augmentation changes, are one each (the tuples below keep the other entries' names and rendering
available); the background is plain, since a fixed pattern would give the object's position a
crop-proof reference. The object is large and moves fast (the motion is most of what changes
between frames), within-class speed varies +-15% rather than more. Size and angle are continuous
only because Grow/Shrink/Spin sweep them; static classes draw them from the same marginal, so they
say nothing about the class.

Any 16-frame window of a 48-frame video shows its class: the scene is a torus (objects leaving one
border re-enter at the other, drawn across the seam), periodic motions turn around within 15
frames, scaling restarts as a sawtooth. The first 8 classes hold no horizontal mirror pair, so a
flip augmentation never turns one into another; later classes add mirror, reversed, fast variants.

Files follow UCF101 (``videos/<Class>/v_<Class>_gXX_cYY.avi`` in MPEG-4 Part 2/AVI, CRLF
``splits/classInd.txt``, ``trainlist01.txt``, ``testlist01.txt``; test groups first), so the
UCF101 code path runs on it unchanged.
"""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from sstl.config import ConfigError, SyntheticConfig, load_section, to_dict
from sstl.data.synthetic_render import (
    MOTIONS,
    render_video,
    sample_appearance,
)
from sstl.files import write_json
from sstl.runtime import cfg_help, command_parser, log_startup, parse_cfg, setup_logging

log = logging.getLogger(__name__)

CLIPS_PER_GROUP = 4  # videos per group, like UCF101's c01..c04+


def write_video(path: str | Path, video: np.ndarray, fps: int) -> None:
    """Encode ``[T, H, W, 3] uint8`` as MPEG-4 Part 2 in AVI (UCF101's format), atomically."""
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.avi")
    with av.open(str(tmp), "w", format="avi") as out:
        stream = out.add_stream("mpeg4", rate=fps)
        stream.width, stream.height = video.shape[2], video.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.thread_count = 1  # single-threaded encoding: byte-identical files per seed
        # Fixed quantiser 2 (the best of MPEG-4's 2..31) so colours and textures survive.
        stream.bit_rate = 8_000_000
        stream.options = {"qmin": "2", "qmax": "2"}
        for frame in video:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(stream.encode())
    os.replace(tmp, path)


def plan(cfg: SyntheticConfig) -> list[tuple[str, int, int, int]]:
    """``(split, class index, group, clip)`` per video; test groups come first, as in UCF101."""
    train_group0 = 1 + math.ceil(cfg.test_per_class / CLIPS_PER_GROUP)
    rows = []
    for c in range(cfg.classes):
        for split, n, group0 in (
            ("test", cfg.test_per_class, 1),
            ("train", cfg.train_per_class, train_group0),
        ):
            rows += [
                (split, c, group0 + i // CLIPS_PER_GROUP, 1 + i % CLIPS_PER_GROUP) for i in range(n)
            ]
    return rows


def video_id(class_idx: int, group: int, clip: int) -> str:
    """``MoveRight/v_MoveRight_g01_c01``: the UCF101 naming scheme."""
    name = MOTIONS[class_idx].name
    return f"{name}/v_{name}_g{group:02d}_c{clip:02d}"


def _write_lines(path: Path, lines: list[str]) -> None:
    path.write_bytes("".join(line + "\r\n" for line in lines).encode())  # CRLF like UCF101


def check_config(cfg: SyntheticConfig) -> None:
    """Checks that need this module (the dataclass checks the rest)."""
    if cfg.classes > len(MOTIONS):
        raise ConfigError(
            f"synthetic.classes = {cfg.classes} is not allowed: at most {len(MOTIONS)} motions"
        )
    if cfg.size % 2:
        raise ConfigError(f"synthetic.size = {cfg.size} is not allowed: an even number (yuv420p)")


def generate(out_dir: str | Path, cfg: SyntheticConfig, progress: bool = True) -> dict[str, Any]:
    """Write the dataset under ``out_dir`` in UCF101's layout; return (and write) its summary.

    Video ``(class c, group g, clip k)`` draws all its randomness from
    ``default_rng([seed, c, (g - 1) * CLIPS_PER_GROUP + k - 1])``, so any subset regenerates
    identically and the same seed gives byte-identical files.
    """
    check_config(cfg)
    out_dir = Path(out_dir)
    split_dir = out_dir / "splits"
    split_dir.mkdir(parents=True, exist_ok=True)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    total_bytes = 0
    for split, c, group, clip in tqdm(
        plan(cfg), desc="synthetic", unit="video", disable=not progress
    ):
        rng = np.random.default_rng([cfg.seed, c, (group - 1) * CLIPS_PER_GROUP + clip - 1])
        video = render_video(MOTIONS[c], sample_appearance(rng), cfg.frames, cfg.size, rng)
        vid = video_id(c, group, clip)
        path = out_dir / "videos" / f"{vid}.avi"
        path.parent.mkdir(parents=True, exist_ok=True)
        write_video(path, video, cfg.fps)
        total_bytes += path.stat().st_size
        lists[split].append(f"{vid}.avi {c + 1}" if split == "train" else f"{vid}.avi")
    classes = [m.name for m in MOTIONS[: cfg.classes]]
    _write_lines(split_dir / "classInd.txt", [f"{i + 1} {n}" for i, n in enumerate(classes)])
    _write_lines(split_dir / "trainlist01.txt", lists["train"])
    _write_lines(split_dir / "testlist01.txt", lists["test"])
    summary = {
        "dataset": "synthetic",
        "config": to_dict(cfg),
        "classes": classes,
        "counts": {"train": len(lists["train"]), "test": len(lists["test"])},
        "video_bytes": total_bytes,
        "format": {"container": "avi", "codec": "mpeg4", "pix_fmt": "yuv420p"},
    }
    write_json(out_dir / "synthetic.json", summary)
    return summary


def cli(argv: list[str] | None = None) -> int:
    """``sstl synthetic --cfg JSON --out DIR``."""
    parser = command_parser(
        "sstl synthetic",
        "Generate the demo's synthetic action dataset: real video files whose classes differ only\n"
        "in motion, laid out like UCF101 (videos/<Class>/*.avi and splits/*.txt), so it runs\n"
        "through the same extraction, training and evaluation as the real datasets.\n\n"
        "Writes OUT/videos/, OUT/splits/ and OUT/synthetic.json (counts and settings).",
        'sstl synthetic --cfg \'{"classes": 4, "frames": 32}\' --out data/synthetic/source',
    )
    parser.add_argument("--cfg", help=cfg_help("synthetic"))
    parser.add_argument("--out", required=True, type=Path, help="dataset folder to write")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        cfg = load_section(SyntheticConfig, parse_cfg(args.cfg), "synthetic")
        check_config(cfg)
    except ConfigError as err:
        raise SystemExit(f"sstl synthetic: {err}") from None
    log_startup("synthetic", to_dict(cfg))
    start = time.perf_counter()
    summary = generate(args.out, cfg, progress=not args.no_progress)
    n, mb = summary["counts"], summary["video_bytes"] / 1e6
    seconds = time.perf_counter() - start
    log.info(
        "wrote %d train + %d test videos (%.1f MB) to %s in %.1f s",
        *n.values(),
        mb,
        args.out,
        seconds,
    )
    return 0
