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

import argparse
import functools
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np
from tqdm import tqdm

from sstl.config import ConfigError, SyntheticConfig, load_section, to_dict
from sstl.runtime import log_startup, parse_cfg, setup_logging, write_json

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Motion:
    """A motion class. ``kind`` picks the trajectory; ``direction`` is a unit vector (y down)."""

    name: str  # CamelCase, used in file names
    kind: str  # translate | orbit | oscillate | scale | pulse | spin
    direction: tuple[float, float] = (0.0, 0.0)
    sign: int = 1  # orbit/spin: +1 clockwise on screen; scale: +1 grow, -1 shrink
    speed: float = 1.0  # multiplies the base speed (fast variants)


_D = 1 / math.sqrt(2)
MOTIONS: list[Motion] = [
    Motion("MoveRight", "translate", (1.0, 0.0)),
    Motion("MoveUp", "translate", (0.0, -1.0)),
    Motion("MoveDown", "translate", (0.0, 1.0)),
    Motion("OrbitClockwise", "orbit", sign=1),
    Motion("OscillateHorizontal", "oscillate", (1.0, 0.0)),
    Motion("OscillateVertical", "oscillate", (0.0, 1.0)),
    Motion("Grow", "scale", sign=1),
    Motion("Shrink", "scale", sign=-1),
    Motion("MoveLeft", "translate", (-1.0, 0.0)),  # mirror / time reverse of MoveRight
    Motion("OrbitCounterClockwise", "orbit", sign=-1),
    Motion("SpinClockwise", "spin", sign=1),
    Motion("SpinCounterClockwise", "spin", sign=-1),
    Motion("MoveDiagonal", "translate", (_D, _D)),  # towards the bottom right
    Motion("MoveRightFast", "translate", (1.0, 0.0), speed=2.0),
    Motion("Pulse", "pulse"),
]

# Motion constants, lengths as fractions of the frame size, times in frames at speed 1.
SPEED_RANGE = (0.85, 1.15)  # within-class speed variation
TRANSLATE_SPEED = 0.05  # 3.2 px/frame at 64 px
ORBIT_RADIUS, ORBIT_PERIOD = 0.22, 30.0
# Period in [18.3, 24.7] frames: every 15-frame span holds a turnaround, never a full period.
OSC_AMPLITUDE, OSC_PERIOD = 0.22, 21.0
SCALE_RANGE = (0.6, 1.6)  # object scale swept by Grow/Shrink/Pulse; static classes draw from it
SCALE_PERIOD = 40.0  # frames for one Grow/Shrink sweep (then it restarts); Pulse uses OSC_PERIOD
# 15 frames turn 45-75 degrees: below the 90-degree symmetry of a checkered square.
SPIN_SPEED = 0.07  # radians per frame

# Appearance palette.
OBJECT_RADIUS = 0.22  # object radius at scale 1, fraction of the frame size
# Drawn per video: only factors an SSTL augmentation scrambles vary (module docstring).
SHAPES = ("disc",)  # also renderable: "square", "triangle", "ring"
COLOURS = (  # six saturated hues, 60 degrees apart
    (220, 60, 50),
    (220, 200, 50),
    (60, 190, 80),
    (50, 200, 210),
    (70, 120, 235),
    (200, 70, 220),
)
TEXTURES = ("halves",)  # breaks rotational symmetry so spin shows; also "stripes", "checker"
TEXTURE_PERIOD, TEXTURE_DARK = 0.6, 0.5  # stripe period (object radii); dark tone factor


@dataclass(frozen=True)
class Background:
    colour: tuple[int, int, int]
    noise_seed: int  # fixed smooth noise pattern (part of the palette, not of the dataset seed)
    distractors: tuple[tuple[float, float, str, tuple[int, int, int]], ...] = ()  # x, y, shape, rgb


# One plain background: a fixed pattern or distractor shapes (both supported) would be a crop-proof
# reference for the object's position, which is per-video and says nothing about the class.
BACKGROUNDS = (Background((38, 42, 52), 1),)
NOISE_AMPLITUDE, DISTRACTOR_RADIUS = 0.0, 0.07  # noise amplitude 0: plain
CLIPS_PER_GROUP = 4  # videos per group, like UCF101's c01..c04+


@dataclass(frozen=True)
class Appearance:
    """What one frame shows, drawn independently of the class."""

    shape: str
    colour: tuple[int, int, int]
    texture: str
    background: int  # index into BACKGROUNDS
    scale: float  # object scale for classes that do not animate it
    angle: float  # orientation in radians for classes that do not spin


def sample_appearance(rng: np.random.Generator) -> Appearance:
    """Draw a look from the palette; the class is not an input, so it cannot leak."""
    lo, hi = SCALE_RANGE
    return Appearance(
        shape=SHAPES[rng.integers(len(SHAPES))],
        colour=COLOURS[rng.integers(len(COLOURS))],
        texture=TEXTURES[rng.integers(len(TEXTURES))],
        background=int(rng.integers(len(BACKGROUNDS))),
        scale=float(lo * (hi / lo) ** rng.uniform()),  # log-uniform: Grow/Shrink's marginal
        angle=float(rng.uniform(0, 2 * math.pi)),
    )


def _trajectory(
    motion: Motion, app: Appearance, frames: int, size: int, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """Centre x, y (pixels), angle and scale per frame, each ``[T]`` float32."""
    k = rng.uniform(*SPEED_RANGE) * motion.speed
    phase = rng.uniform()
    x0, y0 = rng.uniform(0, size, 2)
    t = np.arange(frames, dtype=np.float64)
    cx, cy = np.full(frames, x0), np.full(frames, y0)
    angle, scale = np.full(frames, app.angle), np.full(frames, app.scale)
    dx, dy = motion.direction
    lo, hi = SCALE_RANGE
    if motion.kind == "translate":
        step = TRANSLATE_SPEED * size * k * t
        cx, cy = cx + dx * step, cy + dy * step
    elif motion.kind == "orbit":
        a = 2 * math.pi * (phase + motion.sign * k * t / ORBIT_PERIOD)
        cx, cy = cx + ORBIT_RADIUS * size * np.cos(a), cy + ORBIT_RADIUS * size * np.sin(a)
    elif motion.kind == "oscillate":
        off = OSC_AMPLITUDE * size * np.sin(2 * math.pi * (phase + k * t / OSC_PERIOD))
        cx, cy = cx + dx * off, cy + dy * off
    elif motion.kind == "scale":  # sawtooth in log scale: constant relative growth rate
        scale = lo * (hi / lo) ** ((phase + motion.sign * k * t / SCALE_PERIOD) % 1.0)
    elif motion.kind == "pulse":
        scale = math.sqrt(lo * hi) * (hi / lo) ** (
            0.5 * np.sin(2 * math.pi * (phase + k * t / OSC_PERIOD))
        )
    elif motion.kind == "spin":
        angle = angle + motion.sign * SPIN_SPEED * k * t
    else:
        raise ValueError(f"motion kind {motion.kind!r} of {motion.name} is unknown")
    return tuple(a.astype(np.float32) for a in (cx, cy, angle, scale))


def _sdf(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Signed distance (object radii, negative inside) of a unit-size shape."""
    if shape == "disc":
        return np.hypot(u, v) - 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) - 0.85
    if shape == "triangle":  # intersection of three half-planes, inradius 0.78 (area ~ disc)
        h = np.maximum(-v, 0.866 * u + 0.5 * v)
        return np.maximum(h, -0.866 * u + 0.5 * v) - 0.78
    if shape == "ring":
        return np.abs(np.hypot(u, v) - 0.72) - 0.28
    raise ValueError(f"shape {shape!r} is unknown; use one of {SHAPES}")


def _texture(texture: str, u: np.ndarray, v: np.ndarray, radius: np.ndarray) -> np.ndarray:
    """Light/dark mix in [0, 1]; ``radius`` (pixels) converts to a ~1 px soft edge."""
    w = 2 * math.pi / TEXTURE_PERIOD
    if texture == "stripes":
        d = np.sin(w * u) / w
    elif texture == "checker":
        d = np.sin(w * u) * np.sin(w * v) / w
    elif texture == "halves":
        d = u
    else:
        raise ValueError(f"texture {texture!r} is unknown; use one of {TEXTURES}")
    return np.clip(0.5 + d * radius, 0.0, 1.0)


def _wrap(d: np.ndarray, size: int) -> np.ndarray:
    """Shortest displacement on the torus, so objects cross borders smoothly."""
    return (d + size / 2) % size - size / 2


@functools.lru_cache(maxsize=16)
def _background(index: int, size: int) -> np.ndarray:
    """``[H, W, 3] float32``: base colour + fixed periodic noise + static distractor shapes."""
    bg = BACKGROUNDS[index]
    rng = np.random.default_rng(bg.noise_seed)
    grid = np.arange(size, dtype=np.float32) + 0.5
    x, y = grid[None, :] / size, grid[:, None] / size
    noise = np.zeros((size, size), np.float32)
    freqs = np.stack([rng.integers(1, 5, 6), rng.integers(-4, 5, 6)], axis=1)  # integer: tiles
    for (fx, fy), ph in zip(freqs, rng.uniform(0, 2 * math.pi, 6), strict=True):  # the torus
        noise += np.sin(2 * math.pi * (fx * x + fy * y) + ph)
    img = np.asarray(bg.colour, np.float32) + NOISE_AMPLITUDE / 2.5 * noise[..., None]
    r = DISTRACTOR_RADIUS * size
    for px, py, shape, rgb in bg.distractors:
        u = _wrap(grid[None, :] - px * size, size) / r
        v = _wrap(grid[:, None] - py * size, size) / r
        alpha = np.clip(0.5 - _sdf(shape, u, v) * r, 0.0, 1.0)[..., None]
        img = img + alpha * (np.asarray(rgb, np.float32) - img)
    img.setflags(write=False)
    return img


def motion_by_name(name: str) -> Motion:
    for m in MOTIONS:
        if m.name == name:
            return m
    raise ValueError(f"motion {name!r} is unknown; known: {', '.join(m.name for m in MOTIONS)}")


def render_video(
    motion: Motion | str, appearance: Appearance, frames: int, size: int, rng: np.random.Generator
) -> np.ndarray:
    """Render one video, ``[T, H, W, 3] uint8`` with T = frames, H = W = size.

    ``rng`` draws the within-class variation (speed, phase, start position); the same rng state
    gives the same frames.
    """
    motion = motion_by_name(motion) if isinstance(motion, str) else motion
    cx, cy, angle, scale = _trajectory(motion, appearance, frames, size, rng)  # [T] each
    grid = np.arange(size, dtype=np.float32) + 0.5
    dx = _wrap(grid[None, None, :] - cx[:, None, None], size)  # [T, 1, W]
    dy = _wrap(grid[None, :, None] - cy[:, None, None], size)  # [T, H, 1]
    cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
    radius = (OBJECT_RADIUS * size * scale)[:, None, None]  # pixels per object radius
    u = (cos * dx + sin * dy) / radius  # object frame, rotated by -angle: [T, H, W]
    v = (cos * dy - sin * dx) / radius
    alpha = np.clip(0.5 - _sdf(appearance.shape, u, v) * radius, 0.0, 1.0)[..., None]
    light = _texture(appearance.texture, u, v, radius)[..., None]
    colour = np.asarray(appearance.colour, np.float32)
    obj = colour * (TEXTURE_DARK + (1 - TEXTURE_DARK) * light)  # [T, H, W, 3]
    bg = _background(appearance.background, size)
    out = bg + alpha * (obj - bg)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


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
    parser = argparse.ArgumentParser(prog="sstl synthetic", description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", help="SyntheticConfig as JSON or @file.yaml (default: defaults)")
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
