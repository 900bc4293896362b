"""``sstl analyse``: clip-feature similarity statistics behind Figures 1 and 2.

Features come from a model here (``analysis.layer``: the projection output, or the backbone
feature for a supervised model; :func:`sstl.models.features.extract_features`, centre crop);
the statistics on them are pure functions in :mod:`sstl.eval.similarity_stats`.
``--cfg`` is a :class:`~sstl.config.AnalyseJob`.

- Figure 1: for each strength ``e`` in ``analysis.strengths``, one window of ``clip_len + e``
  frames per test video, two views made with the training temporal augmentation at that strength
  (``e // 3`` frames dropped, so e = 12 drops 4 as the paper's default; playback-rate distortion
  with the pretraining's ``rate_range``), centre crop, no spatial augmentation; the cosine
  similarity of the two views' projection features, summarised over videos. The same probe is
  used for every model, so the curves compare models, not their training settings.
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

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sstl.augment.temporal import TemporalTwoViews
from sstl.config import AnalyseJob, ConfigError, TemporalConfig, load_section, to_dict
from sstl.data.clips import load_manifest, uniform_clips
from sstl.eval.similarity_stats import (
    distance_curve,
    intra_inter,
    n_drop_for,
    paired_cosine,
    relative_centres,
    strength_curve,
)
from sstl.eval.videos import split_rows, video_loader
from sstl.files import write_json
from sstl.models.features import extract_features
from sstl.models.weights import build_encoder, require_init
from sstl.runtime import command_parser, log_startup, parse_cfg, resolve_device, setup_logging

log = logging.getLogger(__name__)


def select_videos(manifest: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    """``n`` test videos with status ok, a seeded random subset kept in manifest order."""
    ok = split_rows(manifest, "test")
    if len(ok) < 2:
        raise ConfigError(f"analysis needs at least 2 test videos with status ok, found {len(ok)}")
    keep = np.sort(np.random.default_rng(seed).permutation(len(ok))[: min(n, len(ok))])
    return ok.iloc[keep].reset_index(drop=True)


def analyse(job: AnalyseJob, manifest_path: str | Path, store: str | Path, weights: str) -> dict:
    """Figure 1 and 2 statistics of one model on the test split (module docstring)."""
    a = job.analysis
    model, info = build_encoder(weights, job.model, job.seed)
    device = resolve_device(a.device)
    model.eval().to(device)
    videos = select_videos(load_manifest(manifest_path), a.videos, a.seed)

    def features(loader: Any) -> np.ndarray:  # [V, clips or views, D]
        return extract_features(model, loader, a.layer, device, a.crop_size)[0].numpy()

    sims = {}
    for e in a.strengths:
        probe = TemporalConfig(
            clip_len=a.clip_len,
            buffer=e,
            n_drop=n_drop_for(e),
            speed_distortion=True,
            rate_range=job.rate_range,
        )
        views = video_loader(
            videos, store, a.clip_len, 1, a.batch_size, a.workers, device,
            window=probe.window, transform=TemporalTwoViews(probe), seed=a.seed,
        )  # fmt: skip
        feats = features(views)  # [V, 2, D]
        sims[e] = paired_cosine(feats[:, 0], feats[:, 1])
    k = a.clips_per_video
    clips = video_loader(videos, store, a.clip_len, k, a.batch_size, a.workers, device, seed=a.seed)
    feats = features(clips)  # [V, K, D]
    positions = np.stack(
        [relative_centres(uniform_clips(n, a.clip_len, k), n) for n in clips.dataset.num_frames]
    )
    rng = np.random.default_rng(a.seed)
    return {
        "num_videos": len(videos),
        "weights_sha256": info["sha256"],
        "features": "projection",
        "figure1": strength_curve(sims),
        "figure2": {**intra_inter(feats, rng), "distance": distance_curve(feats, positions)},
    }


def cli(argv: list[str]) -> int:
    parser = command_parser(
        "sstl analyse",
        "Feature-similarity statistics of a pretrained encoder, behind the paper's Figures 1\n"
        "and 2: how similar two temporally augmented views of a clip stay as the augmentation\n"
        "gets stronger, same-video vs different-video clip similarity, and similarity vs the\n"
        "time between two clips of a video.\n\n"
        "Writes OUT (JSON), read by `sstl report` to draw the figures.",
        "sstl analyse --manifest data/ucf101/manifest.csv --store data/ucf101/store\n"
        "--weights runs/pretrain/mine/weights.pt --experiment mine --dataset ucf101\n"
        "--out similarity.json",
    )
    parser.add_argument(
        "--cfg",
        help='settings: {"analysis": the analysis section of a config file, "model": the '
        "pretrain.model section (for 'scratch'), \"rate_range\": the pretraining's "
        "temporal.rate_range}, as inline JSON or @file.yaml; keys left out keep their defaults",
    )
    parser.add_argument("--manifest", type=Path, required=True, help="the dataset's manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="the dataset's frame store")
    parser.add_argument(
        "--weights", required=True, help="a pretrained weights file, or 'scratch' (random init)"
    )
    parser.add_argument("--experiment", required=True, help="the experiment's name (recorded)")
    parser.add_argument("--dataset", required=True, help="the dataset's name (recorded)")
    parser.add_argument("--out", type=Path, required=True, help="the statistics file (.json)")
    args = parser.parse_args(argv)
    setup_logging()
    job = load_section(AnalyseJob, parse_cfg(args.cfg))
    require_init(args.weights)
    info = log_startup("analyse", {**to_dict(job), "weights": args.weights})
    result = analyse(job, args.manifest, args.store, args.weights)
    result |= {
        "experiment": args.experiment,
        "dataset": args.dataset,
        "weights": args.weights,
        "manifest": str(args.manifest),
        "config": to_dict(job),
        "git": info["git"],
    }
    write_json(args.out, result)
    return 0
