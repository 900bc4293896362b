"""Pure statistics behind Figures 1 and 2 (``sstl analyse``), on feature arrays (numpy).

No model, no data loading: :mod:`sstl.eval.similarity` extracts the features and calls these.

SUMMARY is ``{"mean", "std", "sem", "n", "samples"}`` (``samples``: at most ``SAMPLE_CAP`` raw
similarities, a seeded random subset); CURVE is ``{"edges", "centers", "distance" (mean
distance in the bin), "mean", "sem", "low", "high", "count"}`` with None for empty bins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

SAMPLE_CAP = 5000  # raw similarities kept per histogram in the JSON
DISTANCE_BINS = 10
MAX_INTER_FULL = 4096  # clips: above this, inter-video pairs are sampled, not enumerated
Z95 = 1.96


def n_drop_for(strength: int) -> int:
    """Frames dropped at Figure 1 strength ``e`` (buffer frames): ``e // 3`` (12 -> 4)."""
    if strength < 0:
        raise ValueError(f"strength {strength} is not allowed: buffer frames must be >= 0")
    return strength // 3


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``[..., D]`` -> unit vectors along the last axis (all-zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def paired_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity: ``[N, D], [N, D] -> [N]``."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"paired_cosine needs two [N, D] arrays, got {a.shape} and {b.shape}")
    return np.einsum("nd,nd->n", normalize_rows(a), normalize_rows(b))


def summarize(values: Sequence[float] | np.ndarray) -> dict[str, Any]:
    """Mean, std (ddof=1), standard error and count; None where undefined (n < 2, n = 0)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = int(v.size)
    mean = float(v.mean()) if n else None
    std = float(v.std(ddof=1)) if n > 1 else None
    sem = std / math.sqrt(n) if std is not None else None
    return {"mean": mean, "std": std, "sem": sem, "n": n}


def strength_curve(sims: Mapping[int, Sequence[float] | np.ndarray]) -> dict[str, list]:
    """Figure 1 data from ``{strength: per-video similarities}``, strengths ascending."""
    strengths = sorted(sims)
    stats = [summarize(sims[e]) for e in strengths]
    return {
        "strengths": strengths,
        "n_drop": [n_drop_for(e) for e in strengths],
        **{k: [s[k] for s in stats] for k in ("mean", "std", "sem", "n")},
    }


def _capped(values: np.ndarray, cap: int, rng: np.random.Generator) -> list[float]:
    if values.size > cap:
        values = rng.choice(values, size=cap, replace=False)
    return [float(v) for v in values]


def intra_inter(
    feats: np.ndarray, rng: np.random.Generator, cap: int = SAMPLE_CAP, max_pairs: int = 200_000
) -> dict[str, dict[str, Any]]:
    """Figure 2(a): cosine similarities of clip pairs within and across videos.

    ``feats [V, K, D]``: K clip features per video (V >= 2, K >= 2). Intra: all ``V * K(K-1)/2``
    same-video pairs. Inter: all different-video pairs while ``V * K <= MAX_INTER_FULL``, else
    ``max_pairs`` random ones. Returns ``{"intra": SUMMARY, "inter": SUMMARY}`` (module docstring).
    """
    feats = np.asarray(feats)
    if feats.ndim != 3 or feats.shape[0] < 2 or feats.shape[1] < 2:
        raise ValueError(f"intra_inter needs features [V>=2, K>=2, D], got {feats.shape}")
    v, k, _ = feats.shape
    z = normalize_rows(feats)
    iu = np.triu_indices(k, 1)
    intra = np.einsum("vkd,vjd->vkj", z, z)[:, iu[0], iu[1]].ravel()
    flat, video = z.reshape(v * k, -1), np.repeat(np.arange(v), k)
    if v * k <= MAX_INTER_FULL:
        i, j = np.triu_indices(v * k, 1)
        keep = video[i] != video[j]
        i, j = i[keep], j[keep]
    else:
        i, j = rng.integers(0, v * k, max_pairs), rng.integers(0, v * k, max_pairs)
        keep = video[i] != video[j]
        i, j = i[keep], j[keep]
    inter = np.einsum("nd,nd->n", flat[i], flat[j])
    return {
        name: {**summarize(values), "samples": _capped(values, cap, rng)}
        for name, values in (("intra", intra), ("inter", inter))
    }


def relative_centres(clips: Sequence[Sequence[int]], num_frames: int) -> np.ndarray:
    """Clip positions ``t / T`` (centre frame over frame count, METHOD §2): ``[K]`` float.

    ``clips``: the frame indices of each clip, e.g. from :func:`sstl.data.clips.uniform_clips`.
    """
    return np.asarray([(c[0] + c[-1]) / 2 / max(num_frames, 1) for c in clips], dtype=np.float64)


def distance_curve(
    feats: np.ndarray, positions: np.ndarray, bins: int = DISTANCE_BINS
) -> dict[str, list]:
    """Figure 2(b): same-video similarity vs relative temporal distance, binned.

    ``feats [V, K, D]``, ``positions [V, K]`` in [0, 1]. Pairs ``i < j`` of each video give
    ``(|p_i - p_j|, cos)``; ``bins`` equal bins span [0, largest distance]. Per bin: mean, sem,
    95% interval ``mean ± 1.96 sem``, mean distance and count (None where a bin holds fewer
    than 1 pair, or 2 for sem and interval).
    """
    feats, positions = np.asarray(feats), np.asarray(positions, dtype=np.float64)
    if feats.ndim != 3 or positions.shape != feats.shape[:2]:
        raise ValueError(
            f"distance_curve needs feats [V, K, D] and positions [V, K], got {feats.shape} "
            f"and {positions.shape}"
        )
    z = normalize_rows(feats)
    iu = np.triu_indices(feats.shape[1], 1)
    sims = np.einsum("vkd,vjd->vkj", z, z)[:, iu[0], iu[1]].ravel()
    # rounded so a distance on a bin edge (clips spaced exactly one bin apart) bins stably
    dist = np.round(np.abs(positions[:, iu[0]] - positions[:, iu[1]]).ravel(), 9)
    top = float(dist.max()) if dist.size and dist.max() > 0 else 1.0
    edges = np.round(np.linspace(0.0, top, bins + 1), 9)
    which = np.clip(np.digitize(dist, edges[1:-1], right=True), 0, bins - 1)
    out: dict[str, list] = {k: [] for k in ("distance", "mean", "sem", "low", "high", "count")}
    for b in range(bins):
        s = summarize(sims[which == b])
        out["distance"].append(float(dist[which == b].mean()) if s["n"] else None)
        half = Z95 * s["sem"] if s["sem"] is not None else None
        out["mean"].append(s["mean"])
        out["sem"].append(s["sem"])
        out["low"].append(s["mean"] - half if half is not None else None)
        out["high"].append(s["mean"] + half if half is not None else None)
        out["count"].append(s["n"])
    centers = (edges[:-1] + edges[1:]) / 2
    return {"edges": edges.tolist(), "centers": centers.tolist(), **out}
