"""The workflow run from a checkout whose path holds a space and ``$(...)``: it works, nothing runs.

Multi-task pretraining goes through the launcher (``workflow/scripts/launch.sh`` by absolute
path: torchrun here, srun under Slurm), the one place the checkout's path reaches a shell.
"""

from __future__ import annotations

import os

import pytest
import torch
import yaml

from .conftest import snakemake, workspace_copy

pytestmark = pytest.mark.slow


def test_two_task_pretraining_from_a_hostile_checkout_path(tmp_path, monkeypatch):
    root = tmp_path / "my checkout $(touch PWNED)"
    root.mkdir()
    ws = workspace_copy(root)
    cfg = yaml.safe_load((ws / "config/tiny.yaml").read_text())
    cfg["resources"]["pretrain"] = {"gpus": 0, "tasks": 2}
    cfg["pretrain"]["optim"]["epochs"] = 1
    (ws / "config/tiny.yaml").write_text(yaml.safe_dump(cfg))
    monkeypatch.chdir(tmp_path)  # where a stray `touch PWNED` run by a shell here would land
    for key in ("SLURM_JOB_ID", "SLURM_PROCID", "RANK", "WORLD_SIZE"):  # torchrun, not srun
        monkeypatch.delenv(key, raising=False)
    target = "runs/pretrain/sstl/weights.pt"
    proc = snakemake(ws, target, "--configfile", "config/tiny.yaml", "-p")
    assert str(ws / "workflow/scripts/launch.sh") in proc.stdout + proc.stderr  # the launcher ran
    meta = torch.load(ws / target, weights_only=True)["meta"]
    assert meta["world_size"] == 2, meta
    log = (ws / "logs/pretrain/sstl.log").read_text()
    assert "process group: rank 0/2" in log and "via gloo" in log, log[-3000:]
    pwned = [p for p in [*tmp_path.rglob("PWNED"), *ws.rglob("PWNED")] if p.name == "PWNED"]
    assert not pwned and not os.path.exists("PWNED"), pwned
