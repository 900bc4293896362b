"""The workflow through a real local Slurm cluster, and srun-launched DDP.

Runs against whichever cluster answers on PATH: Slurm 22.05 (.ci/slurm-up.sh) or, with
``.ci/slurm-current-up.sh``'s wrappers first on PATH and SLURM_BASE set, Slurm 24.11 (.ci/run
does both). Skipped when no cluster answers, unless SSTL_CI=1 (CI), where a skip fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
import yaml

from .conftest import (
    slurm_cluster_up,
    slurm_jobs_of,
    snakemake,
    wait_for_jobcomp,
    workspace_copy,
)

pytestmark = [pytest.mark.slow, pytest.mark.slurm]


@pytest.fixture(scope="module", autouse=True)
def slurm_cluster():
    if not slurm_cluster_up():
        pytest.skip("no Slurm cluster (start one with `make slurm-up`)")


def user_profile(ws: Path, **default_resources: str) -> Path:
    """A cluster's own profile, as the README tells users to make it: the repository's Slurm
    profile (partitions.yaml included) with the cluster's account and the like filled in."""
    dst = ws / "profiles" / "mycluster"
    shutil.copytree(ws / "workflow" / "profiles" / "slurm", dst)
    profile = yaml.safe_load((dst / "config.yaml").read_text())
    profile["default-resources"] = default_resources
    (dst / "config.yaml").write_text(yaml.safe_dump(profile))
    return dst


def test_tiny_workflow_through_the_slurm_executor(tmp_path):
    """The whole tiny workflow on Slurm. The partition of each job comes from the profile's
    partitions.yaml, the account from the profile, job sizes from the config, and command-line
    values win over both; each shows in what Slurm ran."""
    ws = workspace_copy(tmp_path / "ws")
    profile = user_profile(ws, slurm_account="sstl-profile")
    snakemake(
        ws,
        "--workflow-profile",
        str(profile),
        "--configfile",
        "config/tiny.yaml",
        "--jobs",
        "4",
        "--slurm-keep-successful-logs",
        "--set-resources",
        "evaluate:slurm_account='sstl-cli'",
        "report:runtime=7",
        timeout=1500,
    )
    assert (ws / "results/report.md").is_file()
    ids = slurm_jobs_of(ws)
    records = wait_for_jobcomp([i for v in ids.values() for i in v])
    jobs = {rule: [records[i] for i in v] for rule, v in ids.items()}
    assert set(jobs) == {
        "synthetic",
        "extract",
        "manifest",
        "pretrain",
        "supervise",
        "finetune",
        "evaluate",
        "retrieve",
        "analyse",
        "report",
    }, jobs.keys()
    for rule, done in jobs.items():
        for job in done:
            assert job["JobState"] == "COMPLETED", (rule, job)
            assert job["WorkDir"] == str(ws), (rule, job)
            # GPU jobs to the partition with GPUs, the others to one without (partitions.yaml)
            gpu = rule in ("pretrain", "supervise", "finetune")
            assert job["Partition"] == ("gpu" if gpu else "cpu"), (rule, job)
            # the account: the command line's for evaluate, the profile's for the rest
            want = "sstl-cli" if rule == "evaluate" else "sstl-profile"
            assert job["Account"] == want, (rule, job)
            assert "cpu=1," in job["Tres"], (rule, job)  # the config's cpus
    assert {j["TimeLimit"] for j in jobs["extract"]} == {"10"}  # the config's runtime
    assert jobs["report"][0]["TimeLimit"] == "7"  # the command line's
    assert len(jobs["pretrain"]) == 1 and len(jobs["supervise"]) == 1  # sstl; the reference
    assert len(jobs["finetune"]) == 3  # sstl, scratch and supervised
    # Slurm granted the training jobs a GPU: the job saw one assigned (without slurmdbd the
    # jobcomp TRES does not list GRES)
    for log in ("logs/pretrain/sstl.log", "logs/finetune/sstl/synthetic.log"):
        assert re.search(r"CUDA_VISIBLE_DEVICES=\d", (ws / log).read_text()), log

    # --default-resources on the command line replaces the profile's whole list (Snakemake's
    # rule for every option); a default partition there beats partitions.yaml. (Before the
    # config gave up partitions, every rule's config partition beat such a default.)
    shutil.rmtree(ws / ".snakemake" / "slurm_logs")
    snakemake(
        ws,
        "results/report.md",
        "--workflow-profile",
        str(profile),
        "--configfile",
        "config/tiny.yaml",
        "--forcerun",
        "report",
        "--slurm-keep-successful-logs",
        "--default-resources",
        "slurm_account='sstl-cli-default'",
        "slurm_partition=gpu",
        timeout=600,
    )
    (report_id,) = slurm_jobs_of(ws)["report"]
    report = wait_for_jobcomp([report_id])[report_id]
    assert (report["Account"], report["Partition"], report["TimeLimit"]) == (
        "sstl-cli-default",
        "gpu",
        "10",
    ), report


def test_two_task_srun_ddp_pretraining(tiny_data, tmp_path):
    """One Slurm job, two tasks started by srun, ranks from SLURM_*, gloo on CPU."""
    from sstl import pipeline as P

    cfg = yaml.safe_load((tiny_data / "config/tiny.yaml").read_text())
    stage = P.stage_config(cfg, "pretrain", "sstl")
    stage["optim"]["epochs"] = 1
    out = tmp_path / "weights.pt"
    script = tmp_path / "job.sh"
    script.write_text(
        "#!/bin/bash\n"
        f"cd {tiny_data}\n"
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
