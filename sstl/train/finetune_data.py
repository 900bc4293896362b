"""Fine-tuning data: class names from the manifest, the train / validation loaders, and the
spatial augmentation split between the loader workers (parameters) and the device (pixels)."""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
import torch
from torch.utils.data import DataLoader

from sstl.augment.spatial import SpatialAugment
from sstl.config import FinetuneConfig, SpatialConfig
from sstl.data.clips import ClipDataset, collate
from sstl.train.distributed import DistEnv, ResumableSampler
from sstl.train.loaders import train_loader
from sstl.train.progress import RunPaths

log = logging.getLogger(__name__)


def class_names(manifest: pd.DataFrame) -> list[str]:
    """Class names indexed by label, from every labelled manifest row."""
    rows = manifest[manifest["label"] >= 0][["label", "class_name"]].drop_duplicates()
    if rows.empty:
        raise ValueError("the manifest has no labelled rows (label >= 0) to fine-tune on")
    if rows["label"].duplicated().any():
        bad = rows[rows["label"].duplicated(keep=False)].to_dict("records")
        raise ValueError(f"labels with more than one class name in the manifest: {bad[:4]}")
    names = dict(zip(rows["label"], rows["class_name"], strict=True))
    return [str(names.get(i, f"class_{i}")) for i in range(int(rows["label"].max()) + 1)]


class FinetuneTransform:
    """Loader-worker transform: draw the window's spatial parameters from its own generator.

    ``{"frames": [T, H, W, 3] uint8, "generator"}`` -> adds ``spatial``: a dict of scalar tensors
    that :meth:`SpatialAugment.apply` consumes on the device after collation (``[B]`` each).
    """

    def __init__(self, spatial: SpatialConfig) -> None:
        self.augment = SpatialAugment(spatial)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        if self.augment.cfg.enabled:
            _, h, w, _ = sample["frames"].shape
            params = self.augment.sample_params(1, h, w, sample.get("generator"))
            sample["spatial"] = {k: v[0] for k, v in params.items()}
        return sample


def augment_batch(
    augment: SpatialAugment, batch: dict[str, Any], device: torch.device
) -> torch.Tensor:
    """``frames [B, T, H, W, 3] uint8`` (zero-padded; real ``sizes [B, 2]``) -> ``[B, 3, T, S, S]``
    float on ``device``."""
    frames, sizes = batch["frames"].to(device, non_blocking=True), batch.get("sizes")
    if not augment.cfg.enabled:
        return augment(frames, sizes=sizes)  # centre crop + normalise
    return augment.apply(frames, batch["spatial"], sizes)


def build_loaders(
    cfg: FinetuneConfig, paths: RunPaths, env: DistEnv, manifest: pd.DataFrame
) -> tuple[ClipDataset, ResumableSampler, DataLoader, DataLoader | None]:
    train = ClipDataset(
        manifest[manifest["split"] == "train"].reset_index(drop=True),
        paths.store,
        mode="window",
        clip_len=cfg.clip_len,
        window=cfg.clip_len,
        transform=FinetuneTransform(cfg.spatial),
        seed=cfg.run.seed,
    )
    common = {"num_workers": cfg.run.workers, "collate_fn": collate}
    what = f"train videos with status ok in {paths.manifest}"
    sampler, loader = train_loader(train, env, cfg.optim.batch_size, cfg.run.seed, what, **common)
    test_rows = manifest[(manifest["split"] == "test") & (manifest["status"] == "ok")]
    val_loader = None
    if test_rows.empty:
        log.warning("no test videos with status ok in %s: validation is skipped", paths.manifest)
    elif env.is_main:
        test = ClipDataset(
            test_rows.reset_index(drop=True), paths.store, "uniform", cfg.clip_len, num_clips=1
        )
        common["pin_memory"] = loader.pin_memory
        val_loader = DataLoader(test, batch_size=loader.batch_size, shuffle=False, **common)
    return train, sampler, loader, val_loader
