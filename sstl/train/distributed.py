"""Process groups for torchrun, srun and single-process runs, and the DDP helpers training uses.

Launchers and what they set:

- ``torchrun``: ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``;
- ``srun`` (one task per GPU): ``SLURM_PROCID``, ``SLURM_NTASKS`` (``SLURM_STEP_NUM_TASKS`` inside a
  step), ``SLURM_LOCALID``; the master is the first host of the step's node list and the port is
  derived from the job id, so every task of the job agrees without talking first;
- anything else: one process, no process group.

NCCL on GPUs, gloo on CPU. ``torch.nn.SyncBatchNorm`` only runs on accelerators, so
:func:`convert_sync_batchnorm` swaps in :class:`GlobalBatchNorm` (the same statistics, computed with
differentiable all-reduces) on CPU, which keeps a CPU/gloo DDP run equal to a one-process run.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
import torch.distributed.nn.functional as dist_fn
from torch import nn
from torch.utils.data import Dataset, DistributedSampler

from sstl.collectives import active

log = logging.getLogger(__name__)


@dataclass
class DistEnv:
    """Where this process sits in the job. ``world_size == 1`` means no process group."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    master_addr: str = "127.0.0.1"
    master_port: int = 29500
    backend: str = "gloo"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def first_host(nodelist: str) -> str:
    """First host of a Slurm node list: ``scontrol show hostnames``, else a simple parser.

    The parser covers the common forms ``node07``, ``gpu[03-05,09],cpu1`` and ``a-[1-2]``.
    """
    try:
        out = subprocess.run(
            ["scontrol", "show", "hostnames", nodelist],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        )
        hosts = out.stdout.split()
        if hosts:
            return hosts[0]
    except (OSError, subprocess.SubprocessError):
        pass
    head = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if head is None:
        raise ValueError(f"cannot parse the Slurm node list {nodelist!r}")
    prefix, ranges = head.group(1), head.group(2)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]  # keeps zero padding: "03"


def detect_env(device_pref: str = "auto") -> DistEnv:
    """Read the launcher's environment variables; starts nothing (safe before any validation)."""
    env = os.environ
    if "RANK" in env and "WORLD_SIZE" in env:  # torchrun (also wins inside a Slurm job)
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", "0"))
        addr, port = env.get("MASTER_ADDR", "127.0.0.1"), int(env.get("MASTER_PORT", "29500"))
    elif "SLURM_PROCID" in env and int(_slurm_tasks()) > 1:  # srun, one task per process
        rank, world = int(env["SLURM_PROCID"]), int(_slurm_tasks())
        local = int(env.get("SLURM_LOCALID", "0"))
        nodes = env.get("SLURM_STEP_NODELIST") or env.get("SLURM_JOB_NODELIST", "127.0.0.1")
        addr = env.get("MASTER_ADDR") or first_host(nodes)
        port = int(env.get("MASTER_PORT") or 15000 + int(env.get("SLURM_JOB_ID", "0")) % 20000)
    else:
        rank, world, local, addr, port = 0, 1, 0, "127.0.0.1", 29500
    use_cuda = device_pref == "cuda" or (device_pref == "auto" and torch.cuda.is_available())
    if use_cuda and not torch.cuda.is_available():
        raise SystemExit("run.device = 'cuda' but no CUDA device is visible; use auto or cpu")
    # srun --gpus-per-task shows each task one GPU: the local rank indexes the visible ones.
    device = (
        torch.device("cuda", local % torch.cuda.device_count()) if use_cuda else torch.device("cpu")
    )
    backend = "nccl" if use_cuda else "gloo"
    return DistEnv(rank, local, world, addr, port, backend, device)


def _slurm_tasks() -> str:
    # Inside an srun step SLURM_STEP_NUM_TASKS is the step's size; SLURM_NTASKS the allocation's.
    return os.environ.get("SLURM_STEP_NUM_TASKS") or os.environ.get("SLURM_NTASKS", "1")


def init_distributed(device_pref: str = "auto") -> DistEnv:
    """Detect the launcher, pick the device and (for more than one process) join the group."""
    env = detect_env(device_pref)
    if env.device.type == "cuda":
        torch.cuda.set_device(env.device)
    if env.distributed and not dist.is_initialized():
        # torchrun hosts the rendezvous store itself (env://); under srun rank 0 hosts it.
        torchrun = "TORCHELASTIC_RUN_ID" in os.environ
        dist.init_process_group(
            env.backend,
            init_method="env://" if torchrun else f"tcp://{env.master_addr}:{env.master_port}",
            rank=env.rank,
            world_size=env.world_size,
            device_id=env.device if env.device.type == "cuda" else None,
        )
        log.info(
            "process group: rank %d/%d (local %d) via %s at %s:%d",
            env.rank,
            env.world_size,
            env.local_rank,
            env.backend,
            env.master_addr,
            env.master_port,
        )
    return env


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over the union of all ranks' batches, for CPU where SyncBatchNorm cannot run.

    Training statistics come from two differentiable all-reduces (sum, then the centred sum of
    squares), so the output and gradients equal plain BatchNorm on the concatenated global batch.
    Running statistics follow ``F.batch_norm`` (unbiased variance). Without a group it is plain BN.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, C, ...]`` -> same shape, normalised per channel over the global batch."""
        if not (self.training and active()):
            return super().forward(x)
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        count = torch.tensor([x.numel() / x.shape[1]], dtype=x.dtype, device=x.device)
        dist.all_reduce(count)
        mean = dist_fn.all_reduce(x.sum(dims)) / count  # (C,)
        centred = x - mean.view(shape)
        var = dist_fn.all_reduce(centred.pow(2).sum(dims)) / count  # biased, as BN normalises
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = self.momentum
                if momentum is None:  # cumulative moving average, as _BatchNorm
                    momentum = 1.0 / float(self.num_batches_tracked)
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(unbiased.detach(), momentum)
        return y


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """All BatchNorm layers -> ``nn.SyncBatchNorm`` on GPU, :class:`GlobalBatchNorm` on CPU."""
    if device.type != "cpu":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and not isinstance(
        module, GlobalBatchNorm
    ):
        new = GlobalBatchNorm(module.num_features, module.eps, module.momentum, module.affine).to(
            device
        )
        new.track_running_stats = module.track_running_stats
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        return new
    for name, child in module.named_children():
        module.add_module(name, convert_sync_batchnorm(child, device))
    return module


class ResumableSampler(DistributedSampler):
    """``DistributedSampler`` that can start an epoch after ``start_batch`` batches.

    The permutation depends only on ``(seed, epoch)``; skipping happens on indices, so consumed
    samples are never decoded again. The global batch ``b`` is the same set of samples for any
    world size (rank ``r`` takes every ``world``-th index), so a resume may change the world size.
    """

    def __init__(self, dataset: Dataset, env: DistEnv, batch_per_rank: int, seed: int = 0) -> None:
        super().__init__(
            dataset,
            num_replicas=env.world_size,
            rank=env.rank,
            shuffle=True,
            seed=seed,
            drop_last=True,
        )
        self.batch_per_rank = batch_per_rank
        self.start_batch = 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:  # type: ignore[override]
        super().set_epoch(epoch)
        self.start_batch = start_batch

    def batches_per_epoch(self) -> int:
        return self.num_samples // self.batch_per_rank

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())
        return iter(indices[self.start_batch * self.batch_per_rank :])

    def __len__(self) -> int:
        return max(self.num_samples - self.start_batch * self.batch_per_rank, 0)
