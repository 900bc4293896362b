"""``sstl analyse``: clip-feature similarity statistics behind Figures 1 and 2.

Features come from a model here; the statistics on them are pure functions in
:mod:`sstl.eval.similarity_stats`, re-exported below.

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

SUMMARY and CURVE are defined in :mod:`sstl.eval.similarity_stats`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sstl.eval.similarity_stats import (
    distance_curve,
    intra_inter,
    n_drop_for,
    normalize_rows,
    paired_cosine,
    relative_centres,
    strength_curve,
    summarize,
)

# the statistics lived in this module before the split; they stay importable from here
# (their constants do not: patch them on sstl.eval.similarity_stats)
__all__ = [
    "analyse",
    "cli",
    "distance_curve",
    "intra_inter",
    "n_drop_for",
    "normalize_rows",
    "paired_cosine",
    "relative_centres",
    "strength_curve",
    "summarize",
]

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
            x = center_crop_normalize(frames.to(device), crop, sizes=batch.get("sizes"))
            x = x.flatten(0, 1)  # [B*C, 3, T, s, s]
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
