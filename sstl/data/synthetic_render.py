"""Rendering of the synthetic motion videos: the motion classes, the appearance palette and the
renderer, ``[T, H, W, 3] uint8`` arrays (``sstl.data.synthetic`` writes them as a dataset).

Why the palette and motions are what they are is in :mod:`sstl.data.synthetic`'s docstring.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np


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
