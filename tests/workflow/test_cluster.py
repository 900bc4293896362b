"""``sstl cluster``: GRES parsing, partition totals, and the real local Slurm cluster.

The live tests need the cluster of ``.ci/slurm-up.sh`` (partitions ``cpu`` and ``gpu``, two fake
GPUs). Without it they skip, unless ``SSTL_CI=1`` (CI) makes a missing cluster a failure.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sstl import cluster


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ("gpu:2", 2),
        ("gpu:a100:4(S:0-1)", 4),
        ("gpu:0(IDX:N/A)", 0),
        ("(null)", 0),
        ("", 0),
        (None, 0),
        ("gpu:tesla:2,gpu:v100:1", 3),
        ("gpu:1(IDX:0),mps:100", 1),
        ("gpu:1g.5gb:7", 7),  # MIG profile as the type
    ],
)
def test_gpu_count(gres, gpus):
    assert cluster.gpu_count(gres) == gpus


def _node(name: str, parts: list[str], gres: str, used: str, state: str) -> dict[str, Any]:
    return {"name": name, "partitions": parts, "gres": gres, "gres_used": used, "state": state}


NODES = [
    _node("g1", ["gpu", "all"], "gpu:a100:4(S:0-1)", "gpu:a100:3(IDX:0-2)", "mixed"),
    _node("g2", ["gpu", "all"], "gpu:a100:4(S:0-1)", "gpu:a100:0(IDX:N/A)", "idle"),
    _node("g3", ["debug"], "gpu:2", "gpu:2(IDX:0-1)", "allocated"),
    _node("c1", ["cpu", "all"], "(null)", "(null)", "idle"),
]


def test_partitions_add_up_gpus_per_partition():
    parts = {p.name: p for p in cluster.partitions(NODES)}
    assert set(parts) == {"all", "debug", "gpu"}  # `cpu` has no GPU
    gpu = parts["gpu"]
    assert (gpu.gpus_total, gpu.gpus_used, gpu.gpus_free) == (8, 3, 5)
    assert gpu.nodes == ["g1", "g2"] and gpu.states == {"mixed", "idle"}
    assert (parts["all"].gpus_total, parts["all"].gpus_free) == (8, 5)
    assert parts["all"].nodes == ["g1", "g2", "c1"]
    assert parts["debug"].gpus_free == 0


def test_partitions_all_and_order():
    names = [p.name for p in cluster.partitions(NODES, gpu_only=False)]
    assert names == ["all", "cpu", "debug", "gpu"]
    assert cluster.partitions([], gpu_only=False) == []


def test_free_gpus_never_negative():
    over = [_node("n", ["gpu"], "gpu:1", "gpu:2", "mixed")]  # drained + re-configured node
    assert cluster.partitions(over)[0].gpus_free == 0


def test_render_lists_partitions_and_jobs():
    job = {
        "jobid": "7",
        "rule": "pretrain",
        "partition": "gpu",
        "state": "RUNNING",
        "elapsed": "0:05",
        "gres": "gpu:1",
        "reason": "g1",
        "comment": "",
    }
    text = cluster.render(cluster.partitions(NODES), [job])
    assert "gpu" in text and "this workflow's jobs (1)" in text
    row = next(line for line in text.splitlines() if line.split()[:1] == ["gpu"])
    assert row.split()[1:3] == ["5", "8"]  # free, total
    assert "pretrain" in text and "(no partition has GPUs)" not in text
    assert "(no partition has GPUs)" in cluster.render([], [])


# --- the live local cluster -------------------------------------------------------------------


def _unavailable(reason: str) -> None:
    pytest.skip(f"{reason} (start it with `make slurm-up`)")  # a failure under SSTL_CI=1


@pytest.fixture(scope="module")
def slurm() -> None:
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        _unavailable("the Slurm client (sinfo, sbatch) is not installed")
    try:
        proc = subprocess.run(
            ["sinfo", "-h", "-o", "%P"], capture_output=True, text=True, timeout=15, check=False
        )
    except subprocess.TimeoutExpired:
        _unavailable("the Slurm controller does not answer")
    if proc.returncode != 0 or "gpu" not in proc.stdout:
        _unavailable(f"no Slurm cluster with a gpu partition: {proc.stderr.strip()}")


def sstl_cluster(*args: str) -> dict[str, Any]:
    """``sstl cluster --json ARGS`` (the installed console script, else ``python -m sstl.cli``)."""
    script = Path(sys.executable).parent / "sstl"
    sstl = [str(script)] if script.exists() else [sys.executable, "-m", "sstl.cli"]
    proc = subprocess.run(
        [*sstl, "cluster", "--json", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _gpu_partition(state: dict[str, Any]) -> dict[str, Any]:
    parts = {p["name"]: p for p in state["partitions"]}
    assert "gpu" in parts, f"no gpu partition in {list(parts)}"
    return parts["gpu"]


@pytest.mark.slurm
def test_cluster_lists_the_gpu_partition(slurm):
    gpu = _gpu_partition(sstl_cluster())
    assert gpu["gpus_total"] == 2
    assert 0 <= gpu["gpus_free"] <= 2 and gpu["nodes"]


@pytest.mark.slurm
def test_cluster_shows_this_workflows_job(slurm, tmp_path):
    free_before = _gpu_partition(sstl_cluster("--workdir", str(tmp_path)))["gpus_free"]
    if free_before < 1:
        _unavailable("both GPUs of the gpu partition are taken by other jobs")
    submit = subprocess.run(
        [
            "sbatch",
            "--parsable",
            "--partition=gpu",
            "--gpus=1",
            "--wrap",
            "sleep 30",
            "-D",
            str(tmp_path),
            "-o",
            str(tmp_path / "slurm-%j.out"),
            "--comment",
            "rule_pretrain_wildcards_exp=sstl",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert submit.returncode == 0, submit.stderr
    jobid = submit.stdout.strip().split(";")[0]
    try:
        deadline, state = time.monotonic() + 20, {}
        while time.monotonic() < deadline:
            state = sstl_cluster("--workdir", str(tmp_path))
            ours = [j for j in state["jobs"] if j["jobid"] == jobid]
            running = bool(ours) and ours[0]["state"] == "RUNNING"
            if running and _gpu_partition(state)["gpus_free"] == free_before - 1:
                break
            time.sleep(1)
        ours = [j for j in state["jobs"] if j["jobid"] == jobid]
        assert ours, f"job {jobid} not listed for {tmp_path}: {state}"
        assert ours[0]["rule"] == "pretrain" and ours[0]["partition"] == "gpu", ours[0]
        assert ours[0]["state"] == "RUNNING", ours[0]
        assert _gpu_partition(state)["gpus_free"] == free_before - 1, state["partitions"]
        # jobs submitted from another folder are not this workflow's
        other = sstl_cluster("--workdir", str(Path(tmp_path).parent))
        assert jobid not in [j["jobid"] for j in other["jobs"]]
    finally:
        subprocess.run(["scancel", jobid], capture_output=True, timeout=30, check=False)
