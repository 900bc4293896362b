"""Temporal memory bank: Eq. 1-2 by hand, slot boundaries, negatives, state, DDP agreement."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sstl.collectives import all_gather_with_grad
from sstl.memory import TemporalMemoryBank


def _bank(slots: int = 2, **kw) -> TemporalMemoryBank:
    """A bank of 4 videos x ``slots`` x D=2 whose every cell is (1, 0)."""
    bank = TemporalMemoryBank(4, slots, 2, momentum=0.5, attenuation=0.6, **kw)
    bank.memory.zero_()
    bank.memory[..., 0] = 1.0
    return bank


def _unit(a: float, b: float) -> list[float]:
    n = math.hypot(a, b)
    return [a / n, b / n]


def test_slot_boundaries() -> None:
    bank = TemporalMemoryBank(2, 2, 4)
    got = bank.slot_of(torch.tensor([0.0, 0.25, 0.4999, 0.5, 0.75, 1.0]))
    assert got.tolist() == [0, 0, 0, 1, 1, 1]
    assert TemporalMemoryBank(2, 1, 4).slot_of(torch.tensor([0.0, 0.5, 1.0])).tolist() == [0, 0, 0]
    assert TemporalMemoryBank(2, 4, 4).slot_of(torch.tensor([0.24, 0.26, 0.99])).tolist() == [
        0,
        1,
        3,
    ]


def test_text_rule_by_hand_l2() -> None:
    bank = _bank(rule="text")
    bank.update(torch.tensor([1]), torch.tensor([0.25]), torch.tensor([[0.0, 5.0]]))  # h = (0, 1)
    # own slot 0: 0.5 * (1, 0) + 0.5 * (0, 1)
    assert bank.memory[1, 0].tolist() == pytest.approx(_unit(0.5, 0.5))
    # slot 1, centre 3/4: w = (1 - |3/4 - 1/4|) * 0.6 * (1 - 0.5) = 0.15
    assert bank.memory[1, 1].tolist() == pytest.approx(_unit(0.85, 0.15))
    # other rows untouched
    assert bank.memory[[0, 2, 3]].eq(torch.tensor([1.0, 0.0])).all()


def test_literal_rule_by_hand_l2() -> None:
    bank = _bank(rule="literal")
    bank.update(torch.tensor([2]), torch.tensor([0.25]), torch.tensor([[0.0, 1.0]]))
    assert bank.memory[2, 0].tolist() == pytest.approx(_unit(0.5, 0.5))
    # momentum m_1 = (1 - 1/2) * 0.6 * 0.5 = 0.15: the far cell moves MORE than the own cell
    assert bank.memory[2, 1].tolist() == pytest.approx(_unit(0.15, 0.85))


def test_text_rule_moves_farther_cells_less() -> None:
    weights = _bank(slots=4).update_weights(torch.tensor([0.1]))[0]
    # own slot 0 gets 1 - m; neighbours (1 - d) * c * (1 - m) with d = 0.275, 0.525, 0.775
    expected = [0.5] + [(1 - d) * 0.6 * 0.5 for d in (0.275, 0.525, 0.775)]
    assert weights.tolist() == pytest.approx(expected)


def test_common_bank_and_no_neighbour_update() -> None:
    common = _bank(slots=1, neighbour_update=False)
    common.update(torch.tensor([0]), torch.tensor([0.9]), torch.tensor([[0.0, 1.0]]))
    assert common.memory[0, 0].tolist() == pytest.approx(_unit(0.5, 0.5))
    own_only = _bank(slots=2, neighbour_update=False)
    own_only.update(torch.tensor([0]), torch.tensor([0.9]), torch.tensor([[0.0, 1.0]]))
    assert own_only.memory[0, 0].tolist() == [1.0, 0.0]
    assert own_only.memory[0, 1].tolist() == pytest.approx(_unit(0.5, 0.5))


def test_duplicates_in_a_batch_apply_in_order() -> None:
    g = torch.Generator().manual_seed(3)
    idx = torch.tensor([1, 3, 1, 1, 0])
    pos = torch.rand(5, generator=g)
    feats = torch.randn(5, 6, generator=g)
    batched = TemporalMemoryBank(5, 3, 6, seed=7)
    one_by_one = TemporalMemoryBank(5, 3, 6, seed=7)
    batched.update(idx, pos, feats)
    for i in range(5):
        one_by_one.update(idx[i : i + 1], pos[i : i + 1], feats[i : i + 1])
    assert torch.allclose(batched.memory, one_by_one.memory, atol=1e-6)
    assert torch.allclose(batched.memory.norm(dim=2), torch.ones(5, 3), atol=1e-5)


def test_init_is_seeded_unit_rows_and_rejects_bad_positions() -> None:
    a, b = TemporalMemoryBank(6, 2, 8, seed=0), TemporalMemoryBank(6, 2, 8, seed=0)
    assert torch.equal(a.memory, b.memory)
    assert not torch.equal(a.memory, TemporalMemoryBank(6, 2, 8, seed=1).memory)
    assert torch.allclose(a.memory.norm(dim=2), torch.ones(6, 2))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        a.update(torch.tensor([0]), torch.tensor([1.5]), torch.randn(1, 8))


def test_video_features_are_slot_means() -> None:
    bank = TemporalMemoryBank(3, 2, 4)
    got = bank.video_features(torch.tensor([2, 0]))
    assert torch.allclose(got, bank.memory[[2, 0]].mean(dim=1))


def test_sample_negatives_exclude_batch_videos() -> None:
    bank = TemporalMemoryBank(8, 2, 3)
    # cell (row r, slot s) holds (r, s, 0) so every sample says where it came from
    rows = torch.arange(8.0)[:, None].expand(8, 2)
    slots = torch.arange(2.0)[None, :].expand(8, 2)
    bank.memory.copy_(torch.stack([rows, slots, torch.zeros(8, 2)], dim=2))
    exclude = torch.tensor([1, 5, 5])
    g = torch.Generator().manual_seed(0)
    negs = bank.sample_negatives(100, exclude, generator=g)  # capped at 6 videos x 2 slots
    assert negs.shape == (12, 3)
    cells = {(int(r), int(s)) for r, s, _ in negs.tolist()}
    assert len(cells) == 12 and not {r for r, _ in cells} & {1, 5}
    assert bank.sample_negatives(5, exclude, generator=g).shape == (5, 3)
    assert bank.sample_negatives(0, exclude).shape == (0, 3)
    assert bank.sample_negatives(4, torch.arange(8)).shape == (0, 3)


def test_state_dict_round_trip(tmp_path) -> None:
    bank = TemporalMemoryBank(5, 2, 4, seed=0)
    bank.update(torch.tensor([0, 4]), torch.tensor([0.1, 0.9]), torch.randn(2, 4))
    torch.save(bank.state_dict(), tmp_path / "bank.pt")
    other = TemporalMemoryBank(5, 2, 4, seed=9)
    other.load_state_dict(torch.load(tmp_path / "bank.pt", weights_only=True))
    assert torch.equal(other.memory, bank.memory)


def _ddp_worker(rank: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    try:
        bank = TemporalMemoryBank(10, 2, 4, seed=0)
        g = torch.Generator().manual_seed(100 + rank)  # different local batches, one video in both
        idx = torch.tensor([0, 2]) if rank == 0 else torch.tensor([2, 7])
        pos, feats = torch.rand(2, generator=g), torch.randn(2, 4, generator=g)
        packed = all_gather_with_grad(torch.cat([idx[:, None].double(), pos[:, None], feats], 1))
        all_idx, all_pos, all_feats = packed[:, 0].long(), packed[:, 1].float(), packed[:, 2:]
        bank.update(all_idx, all_pos, all_feats.float())
        torch.save(
            {"memory": bank.memory, "idx": all_idx, "local": (idx, pos, feats)},
            f"{out_dir}/rank{rank}.pt",
        )
    finally:
        dist.destroy_process_group()


def test_ddp_ranks_end_with_identical_banks(tmp_path, monkeypatch, repo_dir) -> None:
    # spawned children unpickle _ddp_worker by module name (tests.test_memory): they need the
    # repository root on sys.path, which pytest's importlib mode does not add
    monkeypatch.syspath_prepend(str(repo_dir))
    mp.spawn(_ddp_worker, args=(str(tmp_path / "init"), str(tmp_path)), nprocs=2)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    assert r0["idx"].tolist() == r1["idx"].tolist() == [0, 2, 2, 7]
    assert torch.equal(r0["memory"], r1["memory"])
    # and equal to one process applying both ranks' batches in rank order
    ref = TemporalMemoryBank(10, 2, 4, seed=0)
    for part in (r0["local"], r1["local"]):
        ref.update(*part)
    assert torch.allclose(ref.memory, r0["memory"], atol=1e-6)
    assert not torch.equal(ref.memory, TemporalMemoryBank(10, 2, 4, seed=0).memory)
