"""The training loaders: the global batch split across ranks, a batch that cannot fit, and no draw
from the global random generator."""

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

    def __getitem__(self, i: int) -> dict[str, int]:
        return {"index": i}


def test_the_global_batch_is_split_across_ranks_and_covers_every_item_once():
    seen = []
    for rank in (0, 1):
        env = DistEnv(rank=rank, world_size=2)
        sampler, loader = train_loader(Numbers(20), env, batch_size=8, seed=3, what="numbers")
        assert loader.batch_size == 4 and loader.drop_last and not loader.pin_memory
        sampler.set_epoch(0)
        batches = [b["index"].tolist() for b in loader]
        assert len(batches) == sampler.batches_per_epoch() == 2  # 10 items per rank, 4 per batch
        seen += [i for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 16  # no item twice; the last partial batches dropped


def test_a_batch_larger_than_the_dataset_names_the_setting():
    with pytest.raises(ConfigError, match=r"optim.batch_size = 32 is larger than the 5 numbers"):
        train_loader(Numbers(5), DistEnv(), batch_size=32, seed=0, what="numbers")


@pytest.mark.parametrize("workers", [0, 1])
def test_iterating_leaves_the_global_generator_alone(workers):
    """A resumed run restores the global RNG and then makes a new iterator: the iterator must not
    draw from it, or the resumed run's dropout masks differ from an uninterrupted run's."""
    sampler, loader = train_loader(Numbers(8), DistEnv(), 4, seed=0, what="n", workers=workers)
    sampler.set_epoch(0)
    torch.manual_seed(1)
    expected = torch.rand(3)
    torch.manual_seed(1)
    assert len(list(loader)) == 2
    assert torch.equal(torch.rand(3), expected)
