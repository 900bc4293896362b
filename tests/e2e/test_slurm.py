"""The workflow through the real local Slurm cluster (.ci/slurm-up.sh), and srun-launched DDP.

Skipped when no cluster answers, unless SSTL_CI=1 (CI), where a skip fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

from .conftest import snakemake, workspace_copy

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

JOBCOMP = Path(os.environ.get("SLURM_BASE", "/tmp/sstl-slurm")) / "log" / "jobcomp.txt"


def _cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if not _cluster_up():
        pytest.skip("no Slurm cluster (start one with `make slurm-up`)")


def _jobcomp_records() -> list[dict[str, str]]:
    """Finished jobs as slurm's jobcomp/filetxt plugin wrote them (key=value per field)."""
    records = []
    for line in JOBCOMP.read_text().splitlines() if JOBCOMP.exists() else []:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        records.append(fields)
    return records


def test_tiny_workflow_through_the_slurm_executor(tmp_path):
    ws = workspace_copy(tmp_path / "ws")
    before = len(_jobcomp_records())
    proc = snakemake(
        ws,
        "--workflow-profile",
        "workflow/profiles/slurm",
        "--configfile",
        "config/tiny.yaml",
        "--jobs",
        "4",
        timeout=1500,
    )
    assert (ws / "results/report.md").is_file(), proc.stdout[-3000:]
    time.sleep(2)  # jobcomp is written when a job completes
    jobs = [r for r in _jobcomp_records()[before:] if r.get("WorkDir") == str(ws)]
    assert jobs, f"no finished jobs from {ws} in {JOBCOMP}"
    by_rule: dict[str, list[dict[str, str]]] = {}
    for job in jobs:
        comment_rule = job.get("Name", "")
        by_rule.setdefault(comment_rule, []).append(job)
    partitions = {j["Partition"] for j in jobs}
    assert partitions == {"cpu", "gpu"}, partitions
    # the training jobs are the gpu-partition ones and they were granted a GPU
    gpu_jobs = [j for j in jobs if j["Partition"] == "gpu"]
    assert len(gpu_jobs) == 3  # pretrain sstl + finetune sstl/scratch
    # Slurm granted the training jobs a GPU: the job saw one assigned (without slurmdbd the
    # jobcomp TRES does not list GRES)
    for log in ("logs/pretrain/sstl.log", "logs/finetune/sstl/synthetic.log"):
        assert re.search(r"CUDA_VISIBLE_DEVICES=\d", (ws / log).read_text()), log


def test_two_task_srun_ddp_pretraining(tiny_run, tmp_path):
    """One Slurm job, two tasks started by srun, ranks from SLURM_*, gloo on CPU."""
    import yaml

    from sstl import pipeline as P

    cfg = yaml.safe_load((tiny_run / "config/tiny.yaml").read_text())
    stage = P.stage_config(cfg, "pretrain", "sstl")
    stage["optim"]["epochs"] = 1
    out = tmp_path / "weights.pt"
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"cd {tiny_run}\n"
        f"srun --kill-on-bad-exit=1 sstl pretrain --cfg '{json.dumps(stage)}'"
        f" --manifest data/synthetic/manifest.csv --store data/synthetic/store --out {out}"
        f" --state-dir {tmp_path}/state --metrics {tmp_path}/state/metrics.jsonl\n"
    )
    proc = subprocess.run(
        [
            "sbatch",
            "--wait",
            "--ntasks=2",
            "--cpus-per-task=1",
            "--partition=cpu",
            f"--output={tmp_path}/slurm-%j.out",
            "--time=20",
            str(script),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = "\n".join(p.read_text() for p in tmp_path.glob("slurm-*.out"))
    assert proc.returncode == 0, f"{proc.stdout}\n{proc.stderr}\n{logs[-5000:]}"
    assert out.is_file(), logs[-5000:]
    meta = torch.load(out, weights_only=True)["meta"]
    assert meta["world_size"] == 2, meta
    # srun started both ranks; rank 0 reports the group it joined (rank 1 logs warnings only)
    assert "process group: rank 0/2" in logs and "SLURM_PROCID=0" in logs, logs[-3000:]
