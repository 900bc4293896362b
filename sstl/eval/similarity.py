"""``sstl analyse``: clip-feature similarity statistics behind Figures 1 and 2.

Pure statistics on feature arrays (numpy, tested on constructed features) come first; the CLI
that extracts the features with a model follows.

- Figure 1: for each strength ``e`` in ``analysis.strengths``, one window of ``clip_len + e``
  frames per test video, two views made with the training temporal augmentation at that strength
  (``e // 3`` frames dropped, so e = 12 drops 4 as the paper's default; playback-rate distortion
  with ``temporal.rate_range``), centre crop, no spatial augmentation; the cosine similarity of
  the two views' projection features, summarised over videos. The same probe is used for every
  model, so the curves compare models, not their training settings.
- Figure 2: ``analysis.clips_per_video`` clips uniformly spaced per video. (a) similarities of clip
  pairs of the same video (intra) and of different videos (inter); (b) same-video similarity vs
  relative temporal distance ``|t_i - t_j| / frame count`` (t = clip centre frame), binned, with
  the bin mean and a 95% interval (mean ± 1.96 sem).

Output JSON (``runs/analysis/<exp>/<ds>/similarity.json``)::

    {"experiment", "dataset", "weights", "weights_sha256", "num_videos", "config", "git",
     "figure1": {"strengths", "n_drop", "mean", "std", "sem", "n"},
     "figure2": {"intra": SUMMARY, "inter": SUMMARY, "distance": CURVE}}

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


# --------------------------------------------------------------------------------------------
# CLI: features from a model, then the statistics above.

BATCH = 8  # videos per forward pass (Figure 1: 2 views each; Figure 2: K clips each)
WORKERS = 2  # DataLoader processes decoding the store
CFG_KEYS = {"analysis", "model", "temporal", "seed"}


def _select_videos(manifest: Any, n: int, seed: int) -> Any:
    """``n`` test videos with status ok, a seeded random subset kept in manifest order."""
    ok = manifest[manifest["status"] == "ok"].reset_index(drop=True)
    if len(ok) < 2:
        raise SystemExit(f"analysis needs at least 2 test videos with status ok, found {len(ok)}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(ok))[: min(n, len(ok))])
    return ok.iloc[keep].reset_index(drop=True)


def _projections(model: Any, loader: Any, crop: int, device: Any) -> np.ndarray:
    """Projection features of every clip: frames ``[B, *lead, T, H, W, 3]`` -> ``[B, *lead, D]``."""
    import torch

    from sstl.augment.spatial import center_crop_normalize

    out = []
    with torch.no_grad():
        for batch in loader:
            frames = batch["frames"]  # [B, C, T, H, W, 3] uint8, C clips or views per video
            b, c = frames.shape[:2]
            x = center_crop_normalize(frames.flatten(0, 1).to(device), crop)  # [B*C, 3, T, s, s]
            proj = model(x)["proj"].float().cpu().numpy()
            out.append(proj.reshape(b, c, -1))
    return np.concatenate(out)


def _load_model(weights: str, model_cfg: Any, seed: int) -> tuple[Any, str | None]:
    """The model to probe and its weights' sha256 (None for a seeded random init)."""
    import hashlib

    from sstl.models.sstl import SSTLModel, load_weights
    from sstl.runtime import seed_everything

    if weights == "scratch":
        seed_everything(seed)
        return SSTLModel(model_cfg), None
    model = load_weights(weights)[0]
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return model, digest.hexdigest()


def analyse(cfg: dict[str, Any], manifest_path: str, store: str, weights: str) -> dict[str, Any]:
    """Figure 1 and 2 statistics of one model on the test split (module docstring)."""
    from torch.utils.data import DataLoader

    from sstl.augment.temporal import TemporalTwoViews
    from sstl.config import AnalysisConfig, ModelConfig, TemporalConfig, load_section
    from sstl.data.clips import ClipDataset, collate, load_manifest, uniform_clips
    from sstl.runtime import resolve_device

    unknown = sorted(set(cfg) - CFG_KEYS)
    if unknown:
        raise SystemExit(f"--cfg: unknown key {unknown[0]!r}; allowed: {sorted(CFG_KEYS)}")
    a = load_section(AnalysisConfig, cfg.get("analysis"), "analysis")
    if a.clips_per_video < 2 or a.videos < 2 or min(a.strengths, default=0) < 0:
        raise SystemExit(
            f"analysis: videos={a.videos} and clips_per_video={a.clips_per_video} must be >= 2 "
            f"and strengths={a.strengths} >= 0"
        )
    rate_range = load_section(TemporalConfig, cfg.get("temporal"), "temporal").rate_range
    model, sha = _load_model(
        weights, load_section(ModelConfig, cfg.get("model"), "model"), int(cfg.get("seed", a.seed))
    )
    device = resolve_device(a.device)
    model.eval().to(device)
    videos = _select_videos(load_manifest(manifest_path, "test"), a.videos, a.seed)

    def loader(ds: ClipDataset) -> DataLoader:
        return DataLoader(ds, batch_size=BATCH, num_workers=WORKERS, collate_fn=collate)

    sims = {}
    for e in a.strengths:
        probe = TemporalConfig(
            clip_len=a.clip_len,
            buffer=e,
            n_drop=n_drop_for(e),
            speed_distortion=True,
            rate_range=rate_range,
        )
        ds = ClipDataset(
            videos,
            store,
            "window",
            a.clip_len,
            window=probe.window,
            transform=TemporalTwoViews(probe),
            seed=a.seed,
        )
        feats = _projections(model, loader(ds), a.crop_size, device)  # [V, 2, D]
        sims[e] = paired_cosine(feats[:, 0], feats[:, 1])
    k = a.clips_per_video
    ds = ClipDataset(videos, store, "uniform", a.clip_len, num_clips=k, seed=a.seed)
    feats = _projections(model, loader(ds), a.crop_size, device)  # [V, K, D]
    positions = np.stack(
        [relative_centres(uniform_clips(n, a.clip_len, k), n) for n in ds.num_frames]
    )
    rng = np.random.default_rng(a.seed)
    return {
        "num_videos": len(videos),
        "weights_sha256": sha,
        "features": "projection",
        "figure1": strength_curve(sims),
        "figure2": {**intra_inter(feats, rng), "distance": distance_curve(feats, positions)},
    }


def cli(argv: list[str]) -> int:
    """``sstl analyse --cfg JSON --manifest CSV --store DIR --weights W|scratch --out JSON``."""
    import argparse
    from pathlib import Path

    from sstl.runtime import log_startup, parse_cfg, setup_logging, write_json

    parser = argparse.ArgumentParser(prog="sstl analyse", description=__doc__.split("\n")[0])
    parser.add_argument("--cfg", required=True, help="JSON or @file: analysis, model, temporal")
    parser.add_argument("--manifest", required=True, help="data/<ds>/manifest.csv")
    parser.add_argument("--store", required=True, help="data/<ds>/store")
    parser.add_argument("--weights", required=True, help="pretrained weights.pt, or 'scratch'")
    parser.add_argument("--out", type=Path, required=True, help="runs/analysis/<exp>/<ds>/...")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = parse_cfg(args.cfg)
    info = log_startup("analyse", cfg)
    result = analyse(cfg, args.manifest, args.store, args.weights)
    # runs/analysis/<exp>/<ds>/similarity.json names the experiment and dataset
    result |= {
        "experiment": args.out.parent.parent.name,
        "dataset": args.out.parent.name,
        "weights": args.weights,
        "manifest": args.manifest,
        "config": cfg,
        "git": info["git"],
    }
    write_json(args.out, result)
    return 0
