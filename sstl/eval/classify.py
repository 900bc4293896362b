"""``sstl evaluate``: video-level action recognition accuracy of a fine-tuned model (Sec 4.2).

Protocol: ``clips`` (5) clips of ``clip_len`` consecutive frames uniformly spaced over each test
video, centre crop, softmax per clip, the MEAN OF THE SOFTMAX over the clips is the video's score;
top-1 / top-5 over videos, per-class accuracy and the confusion matrix.

    sstl evaluate --cfg JSON --manifest CSV --store DIR --weights FT_WEIGHTS \
        --out metrics.json --per-class CSV --confusion CSV
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader

from sstl.config import ConfigError, EvalConfig, load_section, to_dict
from sstl.data.clips import load_manifest
from sstl.eval.videos import split_rows, video_loader
from sstl.files import sha256_file, write_json
from sstl.models.features import extract_features
from sstl.models.weights import load_finetuned
from sstl.runtime import (
    cfg_help,
    command_parser,
    git_info,
    log_startup,
    parse_cfg,
    resolve_device,
    setup_logging,
)

log = logging.getLogger(__name__)


def video_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict[str, Any]:
    """Video-level metrics from clip logits (pure).

    ``logits [N, K, C]`` (K clips per video), ``labels [N]`` -> dict with ``top1``, ``top5``
    (percent; top-5 is top-C when C < 5), ``per_class`` ``[C]`` accuracy in percent (NaN for a
    class without test videos), ``per_class_mean`` (over classes with videos), ``confusion``
    ``[C, C]`` int64 (row: true class, column: predicted), ``scores [N, C]`` (mean softmax) and
    ``pred [N]``.
    """
    if logits.dim() != 3 or logits.shape[2] != num_classes:
        raise ValueError(f"logits must be [N, K, {num_classes}], got {tuple(logits.shape)}")
    labels = labels.long()
    if labels.numel() and not 0 <= int(labels.min()) <= int(labels.max()) < num_classes:
        raise ValueError(f"labels outside [0, {num_classes}): {sorted(set(labels.tolist()))[:5]}")
    scores = logits.float().softmax(dim=2).mean(dim=1)  # (N, C): average the softmax, not logits
    top = scores.topk(min(5, num_classes), dim=1).indices  # (N, 5)
    pred = top[:, 0]
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    confusion.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    videos = confusion.sum(1)
    per_class = torch.where(
        videos > 0, 100.0 * confusion.diag() / videos.clamp(min=1), torch.tensor(float("nan"))
    )
    n = max(len(labels), 1)
    return {
        "top1": 100.0 * float((pred == labels).sum()) / n,
        "top5": 100.0 * float((top == labels[:, None]).any(1).sum()) / n,
        "per_class": per_class.double().numpy(),
        "per_class_mean": float(np.nanmean(per_class.numpy())) if bool(videos.any()) else 0.0,
        "confusion": confusion.numpy(),
        "scores": scores,
        "pred": pred,
        "num_videos": len(labels),
        "num_classes": num_classes,
        "clips": logits.shape[1],
    }


def evaluate_videos(
    model: nn.Module, loader: DataLoader, device: torch.device | str, crop_size: int
) -> dict[str, Any]:
    """5-clip video-level evaluation: :func:`extract_features` (logits) + :func:`video_metrics`.

    ``loader`` yields uniform-mode batches (``frames [B, K, T, H, W, 3] uint8``); the number of
    classes is the model's output width.
    """
    logits, labels, index = extract_features(model, loader, "logits", device, crop_size)
    out = video_metrics(logits, labels, logits.shape[2])
    out["video_index"] = index
    return out


def write_tables(result: dict[str, Any], classes: list[str], per_class: Path, conf: Path) -> None:
    """Per-class CSV (videos, correct, accuracy) and the confusion matrix CSV (named classes)."""
    confusion = result["confusion"]
    table = pd.DataFrame(
        {
            "label": range(len(classes)),
            "class_name": classes,
            "videos": confusion.sum(1),
            "correct": confusion.diagonal(),
            "accuracy": result["per_class"],
        }
    )
    for path in (per_class, conf):
        path.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(per_class, index=False, float_format="%.4f")
    matrix = pd.DataFrame(confusion, index=classes, columns=classes)
    matrix.index.name = "true \\ predicted"
    matrix.to_csv(conf)


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl evaluate",
        "Action recognition accuracy of a fine-tuned model on the dataset's test videos, as the\n"
        "paper measures it: clips uniformly spaced over each video (5 by default), centre crop,\n"
        "the clips' softmax averaged; top-1 and top-5 over videos.\n\n"
        "Writes OUT (top-1, top-5, the protocol and provenance, JSON), the per-class accuracy\n"
        "and the confusion matrix (CSV, with class names).",
        "sstl evaluate --manifest data/ucf101/manifest.csv --store data/ucf101/store\n"
        "--weights runs/finetune/mine/ucf101/weights.pt --out metrics.json\n"
        "--per-class per_class.csv --confusion confusion.csv",
    )
    parser.add_argument("--cfg", help=cfg_help("evaluate"))
    parser.add_argument("--manifest", type=Path, required=True, help="the dataset's manifest.csv")
    parser.add_argument("--store", type=Path, required=True, help="the dataset's frame store")
    parser.add_argument(
        "--weights", type=Path, required=True, help="weights written by `sstl finetune`"
    )
    parser.add_argument("--out", type=Path, required=True, help="the metrics file (.json)")
    parser.add_argument("--per-class", type=Path, required=True, help="per-class accuracy CSV")
    parser.add_argument("--confusion", type=Path, required=True, help="confusion matrix CSV")
    args = parser.parse_args(argv)
    setup_logging()
    cfg = load_section(EvalConfig, parse_cfg(args.cfg))
    log_startup("evaluate", to_dict(cfg))
    device = resolve_device(cfg.device)
    model, classes, _ = load_finetuned(args.weights)
    manifest = load_manifest(args.manifest)
    rows = split_rows(manifest, "test")
    left_out = int((manifest["split"] == "test").sum()) - len(rows)
    if rows.empty:
        raise ConfigError(f"{args.manifest} has no test videos with status ok to evaluate on")
    if int(rows["label"].max()) >= len(classes):
        raise ConfigError(
            f"test labels go up to {int(rows['label'].max())} but {args.weights} has "
            f"{len(classes)} classes: evaluate on the dataset the model was fine-tuned on"
        )
    loader = video_loader(
        rows, args.store, cfg.clip_len, cfg.clips, cfg.batch_size, cfg.workers, device
    )
    result = evaluate_videos(model.to(device), loader, device, cfg.crop_size)
    write_tables(result, classes, args.per_class, args.confusion)
    metrics = {k: result[k] for k in ("top1", "top5", "num_videos", "num_classes", "clips")}
    metrics |= {
        "per_class_mean": result["per_class_mean"],
        "protocol": (
            f"{cfg.clips} clips of {cfg.clip_len} frames uniformly spaced per test video, centre "
            f"crop {cfg.crop_size}, mean of the clips' softmax, video-level accuracy"
        ),
        "videos_left_out": left_out,
        "weights": {"path": str(args.weights), "sha256": sha256_file(args.weights)},
        "git": git_info(),
    }
    write_json(args.out, metrics)
    log.info(
        "top-1 %.2f  top-5 %.2f over %d videos",
        metrics["top1"],
        metrics["top5"],
        metrics["num_videos"],
    )
    return 0
