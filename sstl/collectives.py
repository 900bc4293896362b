"""The collectives the method and the training loop call, each a no-op without a process group.

Bottom layer: plain ``torch.distributed``, no other ``sstl`` module, so the SSTL method
(:mod:`sstl.method`) gathers its global batch without depending on the training package that
starts the process group (:mod:`sstl.train.distributed`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn


def active() -> bool:
    """True inside a process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_gather_with_grad(t: torch.Tensor) -> torch.Tensor:
    """``[B, ...]`` on every rank -> ``[world * B, ...]`` in rank order, differentiable.

    The backward sums the gradients of all ranks' copies and returns this rank's slice (SimCLR's
    GatherLayer; torch's ``all_gather`` autograd function). When every rank computes the same loss
    from the gathered tensors, DDP's gradient average then equals the one-process gradient.
    Identity without a process group. All ranks must pass the same shape.
    """
    if not active():
        return t
    return torch.cat(dist_fn.all_gather(t.contiguous()), dim=0)


def all_reduce_flag(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is True on any rank (so all ranks stop at the same step)."""
    if not active():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier() -> None:
    if active():
        dist.barrier()
