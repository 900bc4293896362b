"""One gloo rank of test_distributed's collectives check: ``collectives_worker.py RANK PORT OUT``.

Rank r holds rows 3r..3r+2 of a 6-row global batch; it saves the gathered-loss gradient (divided
by the world size as DDP does), the synchronised BatchNorm output, its input gradient and the
running variance, for the test to compare with one process over the whole batch.
"""

import sys

import torch
import torch.distributed as dist
from torch import nn

from sstl.collectives import all_gather_with_grad
from sstl.train.distributed import convert_sync_batchnorm


def main(rank: int, port: int, out: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        x_all = torch.randn(6, 4, 3, 2, 2)
        x = x_all[3 * rank : 3 * rank + 3].clone().requires_grad_(True)
        g = all_gather_with_grad(x.flatten(1))
        loss = (g.sum(1) ** 2).mean()
        loss.backward()
        grad_gather = x.grad.clone() / 2
        bn = convert_sync_batchnorm(nn.Sequential(nn.BatchNorm3d(4)), torch.device("cpu"))
        x.grad = None
        y = bn(x)
        (y * torch.arange(4.0).view(1, 4, 1, 1, 1)).pow(2).sum().backward()
        result = [grad_gather, y.detach(), x.grad.clone(), bn[0].running_var.clone()]
        torch.save(result, out)
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
