"""The temporal memory bank (paper Sec 3.2, Eq. 1-2; METHOD §5).

``memory`` is ``[N, L, D]``: one row per video, one column per temporal slot, each cell a unit
vector. Slot ``l`` (0-based here, 1-based in the paper) covers positions ``[l/L, (l+1)/L)`` of the
video, centre ``(2l+1)/(2L)``. A clip feature ``h`` at position ``t`` moves its own cell with update
weight ``1 - m`` and, with ``neighbour_update``, every other cell of its row by:

- ``rule="text"`` (default): weight ``w_l = (1 - |centre_l - t|) * c * (1 - m)``, so farther cells
  move less ("an updating rate inversely proportional to the distance");
- ``rule="literal"``: the printed Eq. 2, momentum ``m_l = (1 - |centre_l - t|) * c * m`` and weight
  ``1 - m_l``, which moves far cells MORE than the own cell.

Every moved cell is renormalised: ``theta <- normalise((1 - w) theta + w h)``. ``L = 1`` without
neighbour update is the "common memory bank" of Table 5. Under DDP every rank must apply the same
all-gathered updates so the banks stay identical (:class:`sstl.method.SSTL` does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _occurrence_rank(idx: torch.Tensor) -> torch.Tensor:
    """How many earlier entries have the same value: ``[3, 5, 3, 3] -> [0, 0, 1, 2]``."""
    order = torch.argsort(idx, stable=True)
    sorted_idx = idx[order]
    pos = torch.arange(len(idx), device=idx.device)
    is_first = torch.ones_like(sorted_idx, dtype=torch.bool)
    is_first[1:] = sorted_idx[1:] != sorted_idx[:-1]
    group_start = torch.cummax(torch.where(is_first, pos, 0), dim=0).values
    rank = torch.empty_like(pos)
    rank[order] = pos - group_start
    return rank


class TemporalMemoryBank(nn.Module):
    """``N`` videos x ``L`` temporal slots x ``D`` unit features, updated without gradients."""

    memory: torch.Tensor

    def __init__(
        self,
        num_videos: int,
        num_slots: int,
        dim: int,
        momentum: float = 0.5,
        attenuation: float = 0.6,
        rule: str = "text",
        neighbour_update: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if num_videos < 1 or num_slots < 1 or dim < 1:
            raise ValueError(
                f"memory bank shape ({num_videos}, {num_slots}, {dim}) is not allowed: "
                "videos, slots and dim must all be >= 1"
            )
        self.num_slots, self.momentum, self.attenuation = num_slots, momentum, attenuation
        self.rule, self.neighbour_update = rule, neighbour_update
        # Seeded so every DDP rank starts from the same bank without a broadcast.
        gen = torch.Generator().manual_seed(seed)
        init = torch.randn(num_videos, num_slots, dim, generator=gen)
        self.register_buffer("memory", F.normalize(init, dim=2))

    def extra_repr(self) -> str:
        n, slots, d = self.memory.shape
        return (
            f"videos={n}, slots={slots}, dim={d}, momentum={self.momentum}, "
            f"attenuation={self.attenuation}, rule={self.rule!r}, "
            f"neighbour_update={self.neighbour_update}"
        )

    def slot_of(self, positions: torch.Tensor) -> torch.Tensor:
        """Positions ``[B]`` in [0, 1] -> 0-based slot ``[B]`` long: ``min(floor(L t), L - 1)``."""
        slots = torch.floor(positions * self.num_slots).long()
        return slots.clamp(0, self.num_slots - 1)

    def update_weights(self, positions: torch.Tensor) -> torch.Tensor:
        """Weight of the new feature in every cell of the clip's row: ``[B] -> [B, L]``."""
        m, c, slots = self.momentum, self.attenuation, self.num_slots
        centres = (
            torch.arange(slots, device=positions.device, dtype=positions.dtype) + 0.5
        ) / slots
        closeness = 1.0 - (centres[None, :] - positions[:, None]).abs()  # (B, L)
        if not self.neighbour_update or slots == 1:
            neighbour = torch.zeros_like(closeness)
        elif self.rule == "text":
            neighbour = closeness * c * (1.0 - m)
        else:  # literal Eq. 2: the momentum itself is attenuated
            neighbour = 1.0 - closeness * c * m
        own = F.one_hot(self.slot_of(positions), slots).bool()
        return torch.where(own, torch.full_like(neighbour, 1.0 - m), neighbour)

    @torch.no_grad()
    def update(self, video_idx: torch.Tensor, positions: torch.Tensor, feats: torch.Tensor) -> None:
        """Move the rows of ``video_idx [B]`` toward ``feats [B, D]`` taken at ``positions [B]``.

        A video appearing several times in one batch is updated sequentially in batch order (done
        in rounds: the k-th occurrences of all videos form round k), so the result is the same as
        feeding the clips one by one and does not depend on scatter order.
        """
        if positions.numel() and (positions.min() < 0 or positions.max() > 1):
            raise ValueError(
                f"positions must lie in [0, 1] (centre frame / frame count); got "
                f"[{positions.min().item():.4g}, {positions.max().item():.4g}]"
            )
        mem = self.memory
        video_idx = video_idx.to(mem.device).long()
        weights = self.update_weights(positions.to(mem.device, mem.dtype))[..., None]  # (B, L, 1)
        feats = F.normalize(feats.detach().to(mem.device, mem.dtype), dim=1)[:, None]  # (B, 1, D)
        rank = _occurrence_rank(video_idx)
        for r in range(int(rank.max().item()) + 1 if len(rank) else 0):
            sel = rank == r
            rows = video_idx[sel]
            w = weights[sel]
            mem[rows] = F.normalize((1.0 - w) * mem[rows] + w * feats[sel], dim=2)

    def video_features(self, video_idx: torch.Tensor) -> torch.Tensor:
        """Video-level feature ``[B, D]``: mean over the row's slots (not renormalised)."""
        return self.memory[video_idx.to(self.memory.device).long()].mean(dim=1)

    def sample_negatives(
        self, k: int, exclude_idx: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """``[min(k, available), D]`` features of random distinct cells of videos not in the batch.

        Cells are drawn without replacement from every slot of every video outside
        ``exclude_idx``; ``k == 0`` gives an empty ``[0, D]`` tensor.
        """
        n, slots, dim = self.memory.shape
        allowed = torch.ones(n, dtype=torch.bool, device=self.memory.device)
        allowed[exclude_idx.to(self.memory.device).long()] = False
        rows = allowed.nonzero().squeeze(1)  # (n_allowed,)
        n_cells = len(rows) * slots
        k = min(k, n_cells)
        if k == 0:
            return self.memory.new_zeros(0, dim)
        device = generator.device if generator is not None else self.memory.device
        cells = torch.randperm(n_cells, generator=generator, device=device)[:k]
        cells = cells.to(self.memory.device)
        return self.memory[rows[cells // slots], cells % slots]
