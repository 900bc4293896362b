"""The loaders of a training run: a global batch split across ranks, resumable mid-epoch,
workers that outlive a preemption signal, and no draw from the global random generator.

Two properties the engine relies on:

- workers ignore SIGTERM/SIGUSR1 (:func:`~sstl.train.preempt.ignore_in_worker`): Slurm signals the
  whole process group, and a worker killed mid-step would crash the run before it saves;
- each loader has its own ``torch.Generator``: creating a DataLoader iterator draws a worker base
  seed from the loader's generator, or from torch's global one when it has none. The global draw
  would make a run resumed mid-epoch (RNG restored, then a new iterator) diverge from an
  uninterrupted one (fine-tuning's dropout reads the global generator). Samples never use that
  seed: their randomness comes from per-item generators (:class:`sstl.data.clips.ClipDataset`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from sstl.config import ConfigError
from sstl.data.clips import collate
from sstl.train.distributed import DistEnv, ResumableSampler
from sstl.train.preempt import ignore_in_worker


def _common(env: DistEnv, workers: int, seed: int) -> dict[str, Any]:
    return {
        "num_workers": workers,
        "collate_fn": collate,
        "pin_memory": env.device.type == "cuda",
        "worker_init_fn": ignore_in_worker,
        "generator": torch.Generator().manual_seed(seed),
        "persistent_workers": False,
    }


def train_loader(
    dataset: Dataset,
    env: DistEnv,
    batch_size: int,
    seed: int,
    what: str,
    workers: int = 0,
    prefetch_factor: int | None = None,
) -> tuple[ResumableSampler, DataLoader]:
    """``batch_size`` (global, ``optim.batch_size``) -> each rank's :class:`ResumableSampler` and
    a drop-last DataLoader of ``batch_size // world_size`` items; ``what`` names the dataset's
    rows in the error raised when not one batch fits."""
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
        prefetch_factor=prefetch_factor if workers else None,
        **_common(env, workers, seed),
    )
    return sampler, loader


def eval_loader(
    dataset: Dataset, env: DistEnv, batch_size: int, workers: int, seed: int
) -> DataLoader:
    """A loader over every item in order (validation during training)."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, **_common(env, workers, seed))
