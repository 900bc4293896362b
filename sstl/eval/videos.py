"""What every evaluation command does the same way: the videos of a split as a loader of clips,
and the provenance block of its metrics file."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from sstl.data.clips import ClipDataset, collate

log = logging.getLogger(__name__)


def video_loader(
    rows: pd.DataFrame,
    store: str | Path,
    clip_len: int,
    clips: int,
    batch_size: int,
    workers: int,
    device: torch.device,
    *,
    window: int | None = None,
    transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    seed: int = 0,
) -> DataLoader:
    """Manifest ``rows`` (status ok; the others are left out) in order, ``batch_size`` videos a
    batch: ``clips`` uniformly spaced clips of ``clip_len`` frames per video (``frames [B, K, T,
    H, W, 3]``), or with ``window`` one seeded window per video cut by ``transform``."""
    mode = "uniform" if window is None else "window"
    dataset = ClipDataset(
        rows.reset_index(drop=True),
        store,
        mode,
        clip_len,
        window=window,
        num_clips=clips,
        transform=transform,
        seed=seed,
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=device.type == "cuda",
    )


def split_rows(manifest: pd.DataFrame, split: str) -> pd.DataFrame:
    """The ``split`` rows with status ok; logs how many of the split's videos are left out."""
    rows = manifest[manifest["split"] == split]
    ok = rows[rows["status"] == "ok"]
    if len(ok) < len(rows):
        log.warning(
            "%d of %d %s videos are not usable (status != ok) and are left out",
            len(rows) - len(ok),
            len(rows),
            split,
        )
    return ok.reset_index(drop=True)
