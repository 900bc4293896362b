"""The shared training loader: the global batch split across ranks, and a batch that cannot fit."""

from __future__ import annotations

import pytest
import torch

from sstl.config import ConfigError
from sstl.train.distributed import DistEnv
from sstl.train.loaders import train_loader


class Numbers(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def test_the_global_batch_is_split_across_ranks_and_covers_every_item_once():
    seen = []
    for rank in (0, 1):
        env = DistEnv(rank=rank, world_size=2)
        sampler, loader = train_loader(Numbers(20), env, batch_size=8, seed=3, what="numbers")
        assert loader.batch_size == 4 and loader.drop_last and not loader.pin_memory
        sampler.set_epoch(0)
        batches = [b.tolist() for b in loader]
        assert len(batches) == sampler.batches_per_epoch() == 2  # 10 items per rank, 4 per batch
        seen += [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 16  # no item twice; the last partial batches dropped


def test_a_batch_larger_than_the_dataset_names_the_setting():
    with pytest.raises(ConfigError, match=r"optim.batch_size = 32 is larger than the 5 numbers"):
        train_loader(Numbers(5), DistEnv(), batch_size=32, seed=0, what="numbers")
