"""The training loader both engines use: a global batch split across ranks, resumable mid-epoch."""

from __future__ import annotations

from typing import Any

from torch.utils.data import DataLoader, Dataset

from sstl.config import ConfigError
from sstl.train.distributed import DistEnv, ResumableSampler


def train_loader(
    dataset: Dataset, env: DistEnv, batch_size: int, seed: int, what: str, **loader_kwargs: Any
) -> tuple[ResumableSampler, DataLoader]:
    """``batch_size`` (global, ``optim.batch_size``) -> each rank's :class:`ResumableSampler` and
    a drop-last DataLoader of ``batch_size // world_size`` items; ``what`` names the dataset's
    rows in the error raised when not one batch fits. ``loader_kwargs`` go to the DataLoader."""
    batch_per_rank = batch_size // env.world_size
    sampler = ResumableSampler(dataset, env, batch_per_rank, seed=seed)
    if sampler.batches_per_epoch() == 0:
        raise ConfigError(
            f"optim.batch_size = {batch_size} is larger than the {len(dataset)} {what}: lower it"
        )
    loader = DataLoader(
        dataset,
        batch_size=batch_per_rank,
        sampler=sampler,
        drop_last=True,
        pin_memory=env.device.type == "cuda",
        **loader_kwargs,
    )
    return sampler, loader
