"""DVC: commit the tiny run, push to a local remote, pull into a fresh clone, Snakemake is done."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import job_counts, snakemake

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]


def run(cmd: list[str], cwd: Path) -> str:
    proc = subprocess.run(
        cmd,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert proc.returncode == 0, f"{' '.join(cmd)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_push_pull_round_trip(tiny_run, tmp_path):
    # work on a copy (mtimes preserved): `dvc commit` relinks outputs, and other tests expect the
    # shared tiny run untouched
    tiny_run = shutil.copytree(tiny_run, tmp_path / "ws", symlinks=True)
    remote = tmp_path / "remote"
    run(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], tiny_run)
    run(["sstl", "dvc", "commit", "--configfile", "config/tiny.yaml"], tiny_run)

    lock = yaml.safe_load((tiny_run / "dvc.lock").read_text())["stages"]
    report = lock["report"]
    # the table traces back to the hashes of its data, code and params
    deps = {d["path"]: d for d in report["deps"]}
    assert "data/synthetic/manifest.csv" in deps and deps["data/synthetic/manifest.csv"]["md5"]
    for code in ("sstl/report/tables.py", "sstl/report/paper.yaml"):  # code and published values
        assert deps[code]["md5"], code
    assert "config/tiny.yaml" in report["params"]
    outs = {o["path"]: o for o in report["outs"]}
    assert outs["results/tables/table1.csv"]["md5"]
    assert (
        lock["pretrain-sstl"]["params"]["config/tiny.yaml"]["pretrain.optim.epochs"] == 2
    )  # leaf keys

    run(["dvc", "push"], tiny_run)
    run(["git", "add", "dvc.yaml", "dvc.lock", ".gitignore"], tiny_run)
    run([*GIT, "commit", "-qm", "record the run"], tiny_run)

    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(tiny_run), str(clone)], tmp_path)
    run(["dvc", "remote", "modify", "--local", "local", "url", str(remote)], clone)
    run(["sstl", "dvc", "pull", "--configfile", "config/tiny.yaml"], clone)

    for rel in (
        "runs/pretrain/sstl/weights.pt",
        "results/tables/table1.csv",
        "results/report.md",
        "data/synthetic/manifest.csv",
    ):
        assert (clone / rel).is_file(), rel
        assert (clone / rel).read_bytes() == (tiny_run / rel).read_bytes(), rel
    out = snakemake(clone, "-n", "--configfile", "config/tiny.yaml").stdout
    assert job_counts(out) == {}, out[-3000:]
    shutil.rmtree(clone / "data", ignore_errors=True)


def test_commit_records_the_finished_stages_of_a_partial_run(tiny_data, tmp_path):
    """A long run (the paper's) is committed as its jobs finish: `sstl dvc commit` records the
    stages whose files all exist and leaves the rest for later (`dvc commit` alone refuses
    everything at the first missing file)."""
    ws = shutil.copytree(tiny_data, tmp_path / "ws", symlinks=True)
    out = subprocess.run(
        ["sstl", "dvc", "commit", "--configfile", "config/tiny.yaml"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lock = yaml.safe_load((ws / "dvc.lock").read_text())["stages"]
    extracts = {"extract-synthetic-0-of-2", "extract-synthetic-1-of-2"}
    assert set(lock) == {"synthetic", *extracts, "manifest-synthetic"}
    assert "stages are not finished" in out.stderr and "pretrain-sstl" not in lock

    # the paper's command in a checkout where nothing of the paper ran yet: nothing to record
    paper = subprocess.run(
        ["sstl", "dvc", "commit", "--configfile", "config/paper.yaml"],
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
    )
    assert paper.returncode == 0, paper.stderr[-3000:]
    assert "no finished stage to commit" in paper.stderr
    stages = yaml.safe_load((ws / "dvc.yaml").read_text())["stages"]
    # the paper's DAG: 19 pretrainings (Table 4 row 2 is sstl_no_temp's run)
    assert len([s for s in stages if s.startswith("pretrain-")]) == 19
    params = stages["pretrain-sstl"]["params"]
    # the leaf keys the stage reads (the experiment's overrides applied), none of another stage
    [(file, keys)] = [next(iter(entry.items())) for entry in params]
    assert file == "config/paper.yaml" and "seed" in keys and "pretrain.memory.rule" in keys
    assert all(k == "seed" or k.startswith("pretrain.") for k in keys), keys
