"""Launcher detection, the resumable sampler, 2-process gloo collectives and DDP == 1 process."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from sstl.train.distributed import (
    DistEnv,
    ResumableSampler,
    detect_env,
    first_host,
)

LAUNCH_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@pytest.fixture
def clean_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith("SLURM_") or key in LAUNCH_VARS:
            monkeypatch.delenv(key)
    return monkeypatch


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_single_process_without_launcher(clean_env):
    env = detect_env("cpu")
    assert (env.rank, env.world_size, env.distributed, env.is_main) == (0, 1, False, True)
    assert env.backend == "gloo" and env.device == torch.device("cpu")


def test_torchrun_variables(clean_env):
    for key, value in zip(LAUNCH_VARS, ("3", "4", "1", "10.0.0.7", "29999"), strict=True):
        clean_env.setenv(key, value)
    env = detect_env("cpu")
    assert (env.rank, env.world_size, env.local_rank) == (3, 4, 1)
    assert (env.master_addr, env.master_port) == ("10.0.0.7", 29999)


def test_srun_variables_derive_master_from_nodelist_and_job(clean_env, tmp_path):
    clean_env.setenv("PATH", str(tmp_path))  # no scontrol: the node-list parser answers
    clean_env.setenv("SLURM_PROCID", "5")
    clean_env.setenv("SLURM_NTASKS", "8")
    clean_env.setenv("SLURM_LOCALID", "1")
    clean_env.setenv("SLURM_JOB_NODELIST", "gpu[03-04,09],cpu1")
    clean_env.setenv("SLURM_JOB_ID", "123456")
    env = detect_env("cpu")
    assert (env.rank, env.world_size, env.local_rank) == (5, 8, 1)
    assert env.master_addr == "gpu03"
    assert env.master_port == 15000 + 123456 % 20000


def test_single_task_slurm_job_is_one_process(clean_env):
    clean_env.setenv("SLURM_PROCID", "0")
    clean_env.setenv("SLURM_NTASKS", "1")
    assert detect_env("cpu").world_size == 1


@pytest.mark.parametrize(
    ("nodelist", "host"),
    [("node07", "node07"), ("gpu[03-05,09]", "gpu03"), ("a-[1-2],b3", "a-1"), ("x1,x2", "x1")],
)
def test_first_host_parser(clean_env, tmp_path, nodelist, host):
    clean_env.setenv("PATH", str(tmp_path))
    assert first_host(nodelist) == host


def test_first_host_asks_scontrol_when_present(clean_env, tmp_path):
    script = tmp_path / "scontrol"
    script.write_text('#!/bin/sh\n[ "$1 $2" = "show hostnames" ] && printf "alpha\\nbeta\\n"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    clean_env.setenv("PATH", str(tmp_path))
    assert first_host("weird[1-2]") == "alpha"


def test_resumable_sampler_skips_consumed_batches_and_matches_one_process():
    data = list(range(23))
    one = ResumableSampler(data, DistEnv(), batch_per_rank=4, seed=3)
    one.set_epoch(2)
    full = list(one)
    assert one.batches_per_epoch() == 5 and len(full) == 23
    one.set_epoch(2, start_batch=3)
    assert list(one) == full[12:] and len(one) == len(full) - 12
    # two ranks with 2 each: global batch k holds the same videos as the 1-process batch k
    ranks = [ResumableSampler(data, DistEnv(rank=r, world_size=2), 2, seed=3) for r in (0, 1)]
    for s in ranks:
        s.set_epoch(2, start_batch=1)
    per_rank = [list(s) for s in ranks]
    for k in range(4):
        union = set(per_rank[0][2 * k : 2 * k + 2]) | set(per_rank[1][2 * k : 2 * k + 2])
        assert union == set(full[4 * (k + 1) : 4 * (k + 2)])


WORKER = Path(__file__).with_name("collectives_worker.py")


def test_gather_gradient_and_global_batchnorm_equal_one_process(tmp_path, helpers):
    # Separate interpreters, not multiprocessing spawn: a spawned child must import this test
    # module by name, which pytest's importlib mode does not make possible.
    port = str(free_port())
    outs = [tmp_path / f"rank{r}.pt" for r in (0, 1)]
    env = helpers.subprocess_env()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), port, str(outs[r])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for r in (0, 1)
    ]
    for p in procs:
        log, _ = p.communicate(timeout=180)
        assert p.returncode == 0, log[-3000:]
    results = {r: torch.load(outs[r], weights_only=True) for r in (0, 1)}
    torch.manual_seed(0)
    x_all = torch.randn(6, 4, 3, 2, 2).requires_grad_(True)
    loss = (x_all.flatten(1).sum(1) ** 2).mean()
    (grad_ref,) = torch.autograd.grad(loss, x_all)
    bn = nn.BatchNorm3d(4)
    y_ref = bn(x_all)
    (y_ref * torch.arange(4.0).view(1, 4, 1, 1, 1)).pow(2).sum().backward()
    for r in (0, 1):
        grad_gather, y, grad_bn, running_var = results[r]
        rows = slice(3 * r, 3 * r + 3)
        torch.testing.assert_close(grad_gather, grad_ref[rows])
        torch.testing.assert_close(y, y_ref[rows].detach())
        torch.testing.assert_close(grad_bn, x_all.grad[rows])
        torch.testing.assert_close(running_var, bn.running_var)


@pytest.mark.slow
def test_ddp_two_processes_equal_one_process(tiny_data, tmp_path, helpers):
    """Same global batch (8): 2 gloo ranks x 4 == 1 process x 8 (losses, weights, memory bank).

    Two steps: step 1's loss checks the forward (global BatchNorm, gathered InfoNCE), step 2's
    loss and the final weights check both steps' gradients. Tolerances: float32 sums in another
    order leave ~1e-7 relative in the losses and <= ~6e-5 absolute in the weights; a gradient
    off by the world size (a gather without the summed backward) changes the step-2 loss by
    ~5e-3 relative and weights by > 1e-1, per-rank BatchNorm changes step 1's loss already.
    """
    cfg = helpers.tiny_cfg(optim={"epochs": 1, "batch_size": 8, "lr": 0.1, "ref_batch": 8})
    states = {}
    for nproc in (1, 2):
        out = tmp_path / f"n{nproc}"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
        cmd += ["--master_addr", "127.0.0.1", "--master_port", str(free_port())]
        cmd += ["-m", "sstl.cli", "pretrain", *helpers.pretrain_argv(tiny_data, out, cfg)]
        env = helpers.subprocess_env()
        run = subprocess.run(cmd, env=env, cwd=helpers.REPO, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-3000:]
        weights = torch.load(out / "weights.pt", weights_only=True)
        state = torch.load(out / "state" / "resume.pt", weights_only=True)
        states[nproc] = (weights, state, helpers.read_metrics(out / "metrics.jsonl"))
    (w1, s1, m1), (w2, s2, m2) = states[1], states[2]
    assert w2["meta"]["world_size"] == 2 and w1["meta"]["steps"] == w2["meta"]["steps"] == 2
    assert w1["meta"]["config_hash"] == w2["meta"]["config_hash"]
    assert [m["step"] for m in m1] == [m["step"] for m in m2] == [1, 2]
    losses = [(a["loss_total"], b["loss_total"]) for a, b in zip(m1, m2, strict=True)]
    for a, b in losses:
        assert a == pytest.approx(b, rel=1e-5), losses
    assert w1["model"].keys() == w2["model"].keys()
    for key, value in w1["model"].items():
        torch.testing.assert_close(w2["model"][key], value, rtol=1e-4, atol=5e-4, msg=key)
    torch.testing.assert_close(s2["memory"]["memory"], s1["memory"]["memory"], rtol=0, atol=1e-5)
