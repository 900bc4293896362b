"""Clip sampling and the one generic dataset every stage reads videos through.

UCF101, HMDB51, Kinetics-400 and the synthetic set differ only in their manifest
(``data/<ds>/manifest.csv``, written by :mod:`sstl.data.extract`); :class:`ClipDataset` reads
any of them from the frame store. Two modes:

- ``window``: one random window of consecutive frames per video per epoch (pretraining and
  fine-tuning), with its temporal position ``centre frame / frame count`` (METHOD §2);
- ``uniform``: K clips of T consecutive frames, uniformly spaced (evaluation, retrieval).

Randomness comes from a generator seeded by (seed, epoch, item), never from the worker, so a
sample is the same whatever ``num_workers`` is.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset, default_collate, get_worker_info

from sstl.data.store import StoreReader
from sstl.runtime import UserError

MANIFEST_COLUMNS = [
    "id", "path", "label", "class_name", "split", "frames", "fps", "width", "height", "size",
    "checksum", "status", "error",
]  # fmt: skip
_TEXT_COLUMNS = ("id", "path", "class_name", "split", "checksum", "status", "error")


@dataclass
class ClipInfo:
    """Which frames one sample reads."""

    video_index: int  # row of the video in the dataset (= its memory-bank row)
    start: int  # first frame of the (first) clip
    indices: list[int]  # every frame read, in order (K * T for uniform clips)
    position: float  # temporal position in [0, 1] (centre frame / frame count)


def random_window(
    num_frames: int, window: int, generator: torch.Generator
) -> tuple[list[int], float]:
    """A random run of ``window`` consecutive frame indices and its position in [0, 1].

    Videos shorter than the window repeat their last frame. Position = centre frame of the
    window / frame count (METHOD §2).
    """
    if num_frames < 1 or window < 1:
        raise ValueError(f"random_window: num_frames={num_frames} and window={window} must be >= 1")
    start = int(torch.randint(0, max(0, num_frames - window) + 1, (1,), generator=generator))
    indices = [min(start + k, num_frames - 1) for k in range(window)]
    centre = (indices[0] + indices[-1]) / 2
    return indices, centre / num_frames


def uniform_clips(num_frames: int, clip_len: int, num_clips: int) -> list[list[int]]:
    """``num_clips`` runs of ``clip_len`` consecutive frames with uniformly spaced starts.

    The first clip starts at frame 0 and the last ends at the last frame; one clip is the
    centre one. Videos shorter than a clip repeat their last frame.
    """
    if num_frames < 1 or clip_len < 1 or num_clips < 1:
        raise ValueError(
            f"uniform_clips: num_frames={num_frames}, clip_len={clip_len}, "
            f"num_clips={num_clips} must all be >= 1"
        )
    last_start = max(0, num_frames - clip_len)
    if num_clips == 1:
        starts = [last_start // 2]
    else:
        starts = np.rint(np.linspace(0, last_start, num_clips)).astype(int).tolist()
    return [[min(s + k, num_frames - 1) for k in range(clip_len)] for s in starts]


def load_manifest(path: str | os.PathLike, split: str | None = None) -> pd.DataFrame:
    """Read a manifest CSV (all rows, any status); ``split`` keeps only that split's rows."""
    df = pd.read_csv(path, dtype={c: str for c in _TEXT_COLUMNS}, keep_default_na=False)
    missing = [c for c in MANIFEST_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path} is not a manifest: columns {missing} are missing")
    if split is not None:
        splits = sorted(set(df["split"]))
        if split not in splits:
            raise ValueError(f"{path} has no split {split!r}; it has {splits}")
        df = df[df["split"] == split].reset_index(drop=True)
    return df


def _item_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 64-bit seed from (seed, epoch, index): nearby items get unrelated streams."""
    words = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint32)
    return int(words[0]) << 32 | int(words[1])


class StoreFilesMissingError(UserError, FileNotFoundError):
    """Store files the manifest lists are gone (deleted or moved after extraction)."""


def check_store_files(root: Path, rel_paths: list[str]) -> None:
    """Raise StoreFilesMissingError naming the absent files and the shards to extract again.

    One directory listing per folder, not a stat per file: cheap on a network filesystem.
    """
    present: dict[Path, set[str]] = {}
    missing = []
    for rel in rel_paths:
        path = root / rel
        if path.parent not in present:
            try:
                present[path.parent] = set(os.listdir(path.parent))
            except (FileNotFoundError, NotADirectoryError):
                present[path.parent] = set()
        if path.name not in present[path.parent]:
            missing.append(rel)
    if not missing:
        return
    # the workflow's store paths are <shard>/<id>.mp4, its shard lists data/<ds>/shards/<shard>.csv
    shards = sorted({Path(rel).parts[0] for rel in missing})
    if all(re.fullmatch(r"\d+-of-\d+", s) for s in shards):
        how = (
            f"extract shard(s) {', '.join(shards)} again: delete {root}/<shard>/ and "
            f"{root.parent}/shards/<shard>.csv of each, then rerun snakemake"
        )
    else:
        how = f"rerun `sstl extract` for {root}"
    raise StoreFilesMissingError(
        f"{len(missing)} of {len(rel_paths)} frame-store files the manifest lists are missing "
        f"under {root} (first: {', '.join(missing[:5])}): they were deleted or moved after "
        f"extraction. To fix, {how} (or restore them with `sstl dvc pull`)."
    )


class ClipDataset(Dataset):
    """Clips of the videos whose manifest status is ``ok``, read from the frame store.

    Item ``i`` is a dict: ``frames`` uint8 ``[window, H, W, 3]`` (mode ``window``) or
    ``[K, clip_len, H, W, 3]`` (mode ``uniform``), ``label`` int, ``index`` = i (the video's
    memory-bank row), ``position`` float (window centre / frame count; 0.5 for uniform).
    ``transform(sample) -> sample`` runs last; it also receives ``sample["generator"]``, the
    item's seeded torch.Generator, so its randomness is reproducible (the key is removed after).
    """

    def __init__(
        self,
        manifest: pd.DataFrame,
        store_root: str | os.PathLike,
        mode: str = "window",
        clip_len: int = 16,
        window: int | None = None,
        num_clips: int = 1,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in ("window", "uniform"):
            raise ValueError(f"ClipDataset mode = {mode!r} is not allowed: 'window' or 'uniform'")
        rows = manifest[manifest["status"] == "ok"].reset_index(drop=True)
        if rows.empty:
            raise ValueError(f"the manifest has no videos with status 'ok' ({len(manifest)} rows)")
        root = Path(store_root)
        check_store_files(root, list(rows["path"]))
        self.paths = [str(root / p) for p in rows["path"]]
        self.ids = [str(v) for v in rows["id"]]
        self.labels = [int(v) for v in rows["label"]]
        self.num_frames = [int(v) for v in rows["frames"]]
        self.mode, self.clip_len, self.num_clips = mode, clip_len, num_clips
        self.window = window or clip_len
        self.transform, self.seed = transform, seed
        # Shared memory: set_epoch in the main process reaches persistent workers too.
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def epoch(self) -> int:
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Draw new windows: call before iterating the loader for ``epoch``."""
        self._epoch.fill_(epoch)

    def clip(self, i: int, generator: torch.Generator | None = None) -> ClipInfo:
        """The frames item ``i`` reads this epoch."""
        n = self.num_frames[i]
        if self.mode == "uniform":
            clips = uniform_clips(n, self.clip_len, self.num_clips)
            return ClipInfo(i, clips[0][0], [k for c in clips for k in c], 0.5)
        if generator is None:
            generator = self.generator(i)
        indices, position = random_window(n, self.window, generator)
        return ClipInfo(i, indices[0], indices, position)

    def generator(self, i: int) -> torch.Generator:
        """The item's random stream for the current epoch."""
        return torch.Generator().manual_seed(_item_seed(self.seed, self.epoch, i))

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} is out of range for {len(self)} videos")
        generator = self.generator(i)
        info = self.clip(i, generator)
        # One reader per item: a handle per video would exhaust file descriptors on Kinetics,
        # and opening a store file costs ~0.5 ms.
        with StoreReader(self.paths[i]) as reader:
            frames = reader.read(info.indices)  # [N, H, W, 3]
        if self.mode == "uniform":
            frames = frames.view(self.num_clips, self.clip_len, *frames.shape[1:])
        sample = {"frames": frames, "label": self.labels[i], "index": i, "position": info.position}
        if self.transform is not None:
            sample = self.transform({**sample, "generator": generator})
            sample.pop("generator", None)
        return sample


def _pad_frames(frames: list[torch.Tensor]) -> torch.Tensor:
    """Stack ``[..., h_i, w_i, 3]`` uint8 tensors into ``[B, ..., H, W, 3]``, zero-padded at the
    bottom and right to the largest ``H`` and ``W``.

    In a loader worker the result lives in shared memory, as default_collate's stack does, so
    the batch reaches the main process without another copy.
    """
    lead = frames[0].shape[:-3]
    height = max(f.shape[-3] for f in frames)
    width = max(f.shape[-2] for f in frames)
    shape = (len(frames), *lead, height, width, frames[0].shape[-1])
    numel = math.prod(shape)
    if get_worker_info() is not None:
        storage = frames[0]._typed_storage()._new_shared(numel, device=frames[0].device)
        out = frames[0].new(storage).resize_(shape).zero_()
    else:
        out = frames[0].new_zeros(shape)
    for dst, f in zip(out, frames, strict=True):
        dst[..., : f.shape[-3], : f.shape[-2], :] = f
    return out


def collate(batch: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch samples: frames ``[B, ..., H, W, 3]`` uint8, ``sizes [B, 2]`` int64, label/index
    int64, position float32; the other keys as torch's default_collate batches them.

    The store keeps each video's aspect ratio, so the samples of a batch may differ in height and
    width: frames are zero-padded at the bottom and right to the batch's largest ``H`` and ``W``,
    and ``sizes`` holds each sample's real ``(h, w)``. The spatial augmentation and the centre
    crop read only that region (:mod:`sstl.augment.spatial`). Equal sizes stack as before.
    """
    if not batch or "frames" not in batch[0]:
        out = default_collate(batch)
    else:
        frames = [s["frames"] for s in batch]
        sizes = torch.tensor([f.shape[-3:-1] for f in frames], dtype=torch.int64)
        if any(f.shape != frames[0].shape for f in frames):
            if any(f.shape[:-3] != frames[0].shape[:-3] for f in frames):
                shapes = sorted({tuple(f.shape) for f in frames})
                raise ValueError(f"collate: samples differ in more than H and W: {shapes[:4]}")
            stacked = _pad_frames(frames)
        else:
            stacked = default_collate(frames)
        out = default_collate([{k: v for k, v in s.items() if k != "frames"} for s in batch])
        out |= {"frames": stacked, "sizes": sizes}
    if "position" in out:
        out["position"] = out["position"].float()
    return out
