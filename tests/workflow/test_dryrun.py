"""The workflow parses and plans the expected jobs for every config, locally and for Slurm.

All Snakemake subprocesses of this module run once, together, in a module fixture (each costs
~3 s of Snakemake start-up); every run uses a fresh ``--directory`` so the counts are those of a
clean checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from sstl import dvcgen
from sstl import pipeline as P

REPO = Path(__file__).resolve().parents[2]
HEAVY = {"extract", "pretrain", "supervise", "finetune", "evaluate", "retrieve"}
SLURM_PROFILE = REPO / "workflow" / "profiles" / "slurm"


def expected_jobs(config: dict[str, Any]) -> dict[str, int]:
    """Jobs per rule a clean dry run of ``config`` must plan, derived from the config itself."""
    used = P.used_datasets(config)
    runs = P.run_experiments(config)
    ft, rt = len(config["finetune"]["datasets"]), len(config["retrieval"]["datasets"])
    counts = {
        "synthetic": int("synthetic" in used),
        "fetch": len([d for d in used if d != "synthetic"]),
        "extract": config["extract"]["shards"] * len(used),
        "manifest": len(used),
        "pretrain": len([e for e in runs if P.init_of(config, e) == "pretrained"]),
        "supervise": len([e for e in runs if P.init_of(config, e) == "supervised"]),
        "finetune": len(runs) * ft,
        "evaluate": len(runs) * ft,
        "retrieve": len(runs) * rt,
        "analyse": len(runs) * int(bool(config["analysis"].get("dataset"))),
        "report": 1,
        "all": 1,
    }
    return {rule: n for rule, n in counts.items() if n}


@pytest.fixture(scope="module")
def runs(snakemake, tmp_path_factory) -> dict[str, Any]:
    """Every Snakemake call of this module, 3 at a time."""
    default_wd = tmp_path_factory.mktemp("default")
    # no --configfile: the Snakefile's own `configfile: config/config.yaml` (relative to the
    # working directory), as `make demo` runs it
    (default_wd / "config").symlink_to(REPO / "config", target_is_directory=True)

    def cfg(name: str) -> list[str]:
        return ["--configfile", str(REPO / "config" / f"{name}.yaml")]

    calls = {
        "config": (["-n"], default_wd),
        "tiny": (["-n", *cfg("tiny")], None),
        "paper": (["-n", *cfg("paper")], None),
        "slurm": (["-n", "--workflow-profile", str(SLURM_PROFILE), *cfg("config")], None),
        "slurm_paper": (["-n", "--workflow-profile", str(SLURM_PROFILE), *cfg("paper")], None),
        "lint": (["--lint", *cfg("config")], None),
    }

    def one(name: str):
        args, wd = calls[name]
        return snakemake(args, wd or tmp_path_factory.mktemp(name))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(calls, pool.map(one, calls), strict=True))


@pytest.fixture(scope="module")
def paper_jobs(tmp_path_factory) -> list[Any]:
    """The paper config's jobs through Snakemake's API (as ``sstl dvc`` builds them)."""
    wd = tmp_path_factory.mktemp("paper_api")
    return dvcgen._jobs(REPO / "Snakefile", REPO / "config" / "paper.yaml", wd)


def _resources_of(output: str, rule: str) -> dict[str, str]:
    """``resources:`` of the first job of ``rule`` in a dry run's job listing."""
    block = output.split(f"rule {rule}:", 1)
    assert len(block) == 2, f"no {rule} job in the dry run"
    m = re.search(r"^\s+resources: (.*)$", block[1], re.MULTILINE)
    assert m, f"no resources line for {rule}"
    return dict(item.split("=", 1) for item in m.group(1).split(", "))


@pytest.mark.parametrize("name", ["config", "tiny", "paper"])
def test_dry_run_plans_the_expected_jobs(runs, job_stats, configs, name):
    run = runs[name]
    assert run.returncode == 0, run.describe()
    assert job_stats(run.output) == expected_jobs(configs[name]), run.describe()


def test_demo_and_paper_job_counts(runs, job_stats):
    demo = job_stats(runs["config"].output)
    assert demo == {
        "synthetic": 1,
        "extract": 2,
        "manifest": 1,
        "pretrain": 6,  # sstl and sstl_no_temp, 3 seeds each
        "supervise": 1,  # the supervised reference
        "finetune": 8,  # + scratch and supervised
        "evaluate": 8,
        "retrieve": 8,
        "analyse": 8,
        "report": 1,
        "all": 1,
    }
    paper = job_stats(runs["paper"].output)
    assert paper["pretrain"] == 19  # 21 experiments: `scratch` untrained, `supervised` supervised
    assert paper["supervise"] == 1
    assert paper["extract"] == 64 * 3  # 64 shards x kinetics400, ucf101, hmdb51
    assert paper["fetch"] == 3 and "synthetic" not in paper


def test_every_rule_logs_and_heavy_rules_benchmark(paper_jobs):
    rules = {r.name: r for r in paper_jobs[0].rule.workflow.rules if r.name != "all"}
    assert set(rules) >= HEAVY, f"rules missing: {HEAVY - set(rules)}"
    no_log = sorted(name for name, r in rules.items() if not list(r.log))
    assert not no_log, f"rules without log: {no_log}"
    no_bench = sorted(name for name in HEAVY if not rules[name].benchmark)
    assert not no_bench, f"heavy rules without benchmark: {no_bench}"


def test_paper_pretrain_resources(paper_jobs):
    pretrain = [j for j in paper_jobs if j.rule.name == "pretrain"]
    assert len(pretrain) == 19
    for job in pretrain:
        res = job.resources
        got = {k: res.get(k) for k in ("gpu", "tasks", "nodes", "mpi", "slurm_extra")}
        assert got == {
            "gpu": 32,
            "tasks": 32,
            "nodes": 4,
            "mpi": "srun",
            "slurm_extra": "--signal=USR1@300",  # the config's warn_seconds
        }
        assert res.get("slurm_partition") is None  # the profile's (partitions.yaml)
        assert res.get("tasks_per_gpu") == 1 and res.get("cpus_per_task") == 8
        # one process per GPU, started by the launcher script (srun inside the allocation)
        launch, ntasks = job.shellcmd.split()[:2]
        assert Path(launch).name == "launch.sh" and ntasks == "32", job.shellcmd[:200]
        assert os.access(launch if Path(launch).is_absolute() else REPO / launch, os.X_OK)


def test_paper_single_gpu_rules_resources(paper_jobs):
    for job in paper_jobs:
        if job.rule.name in ("finetune", "evaluate", "retrieve", "analyse"):
            assert job.resources.get("gpu") == 1, job.rule.name
            assert job.resources.get("slurm_partition") is None, job.rule.name  # profile's
            assert job.resources.get("mpi") is None, job.rule.name  # a Namedlist: no `in`
        if job.rule.name in ("fetch", "extract", "manifest", "report"):
            assert not job.resources.get("gpu"), job.rule.name


def test_lint_is_clean(runs):
    run = runs["lint"]
    assert run.returncode == 0, run.describe()
    assert "Congratulations" in run.output, run.describe()


def _snakefmt(*args: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "snakefmt", *args, "Snakefile", "workflow/rules"]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)


def test_snakefmt_check():
    if _snakefmt("--check").returncode != 0:
        diff = _snakefmt("--diff")
        pytest.fail(f"snakefmt would reformat (run `make format`):\n{diff.stdout[-3000:]}")


def _slurm_run(runs: dict[str, Any], name: str):
    run = runs[name]
    if run.returncode != 0 and shutil.which("sbatch") is None:
        pytest.skip("the Slurm executor plugin needs sbatch even for a dry run; sbatch is absent")
    assert run.returncode == 0, run.describe()
    return run


def test_slurm_profile_dry_run(runs, job_stats, configs):
    run = _slurm_run(runs, "slurm")
    assert "workflow/profiles/slurm" in run.output
    assert job_stats(run.output) == expected_jobs(configs["config"])
    for rule in ("extract", "pretrain", "finetune", "report"):
        res = _resources_of(run.output, rule)
        assert {"runtime", "mem_mb", "cpus_per_task"} <= set(res), (rule, res)
        # partitions come from the profile's partitions.yaml at submission, not from the rules
        assert "slurm_partition" not in res, (rule, res)
        warned = rule in ("pretrain", "finetune")
        assert res.get("slurm_extra") == ("--signal=USR1@120" if warned else None), (rule, res)


def test_slurm_profile_keeps_the_paper_multi_gpu_request(runs):
    """The profile must not shrink the config's 32-GPU pretraining to one GPU."""
    run = _slurm_run(runs, "slurm_paper")
    res = _resources_of(run.output, "pretrain")
    got = {k: res.get(k) for k in ("gpu", "tasks", "nodes", "mpi", "slurm_extra")}
    assert got == {
        "gpu": "32",
        "tasks": "32",
        "nodes": "4",
        "mpi": "srun",
        "slurm_extra": "--signal=USR1@300",
    }, f"pretrain resources under the Slurm profile: {res}"
