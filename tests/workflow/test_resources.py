"""Job resources: the config owns sizes, the Slurm profile owns where jobs run; the warning signal.

What reaches real submitted jobs is checked on the local Slurm clusters in
``tests/e2e/test_slurm_profile.py`` and ``tests/e2e/test_slurm_preempt.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sstl import pipeline as P
from sstl import slurm_job

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["config", "tiny", "paper"])
def test_configs_hold_sizes_only(configs, name):
    """No partition, account, QOS, constraint or GPU type in config/*.yaml: the profile's."""
    for rule, section in configs[name]["resources"].items():
        assert not set(section) & set(slurm_job.CLUSTER_KEYS), (name, rule, section)
    text = (REPO / "config" / f"{name}.yaml").read_text()
    resources = text[text.index("\nresources:") :]
    for line in resources.splitlines():
        code = line.split("#", 1)[0]
        assert "partition" not in code and "account" not in code, line


@pytest.mark.parametrize(("key", "name"), sorted(slurm_job.CLUSTER_KEYS.items()))
def test_a_cluster_key_in_the_config_says_where_it_goes(configs, key, name):
    cfg = configs["tiny"]
    cfg["resources"]["pretrain"][key] = "a100"
    with pytest.raises(P.PipelineConfigError) as err:
        P.validate(cfg, check_paths=False)
    msg = str(err.value)
    assert f"resources.pretrain.{key} = 'a100'" in msg, msg
    assert "workflow/profiles/slurm/config.yaml" in msg and f"{name} in" in msg, msg
    assert f"--set-resources pretrain:{name}=" in msg, msg


def test_warning_must_come_inside_the_runtime(configs):
    cfg = configs["tiny"]  # runtime 10 min
    cfg["resources"]["pretrain"]["warn_seconds"] = 599
    P.validate(cfg, check_paths=False)
    cfg["resources"]["pretrain"]["warn_seconds"] = 600
    with pytest.raises(
        P.PipelineConfigError, match=r"resources.pretrain.warn_seconds = 600 is not"
    ):
        P.validate(cfg, check_paths=False)
    # a default applies to every rule without its own runtime
    cfg["resources"]["pretrain"]["warn_seconds"] = 60
    cfg["resources"]["default"]["warn_seconds"] = 9999
    with pytest.raises(P.PipelineConfigError, match=r"resources.default.warn_seconds = 9999"):
        P.validate(cfg, check_paths=False)


@pytest.mark.parametrize("value", [-1, 65536, 1.5])
def test_warn_seconds_range(configs, value):
    cfg = configs["tiny"]
    cfg["resources"]["finetune"]["warn_seconds"] = value
    with pytest.raises(P.PipelineConfigError, match=r"resources.finetune.warn_seconds"):
        P.validate(cfg, check_paths=False)


def test_training_rules_are_warned_by_default(configs):
    for name in ("config", "tiny", "paper"):
        for rule in ("pretrain", "finetune"):
            res = P.resources(configs[name], rule)
            assert 0 < res["warn_seconds"] < 60 * res["runtime"], (name, rule, res)


_PROBE = textwrap.dedent(
    """
    import signal, subprocess, sys
    from sstl import slurm_job
    slurm_job.ignore_warning_signal()
    here = signal.getsignal(signal.SIGUSR1) == signal.SIG_IGN
    # a shell started from here, as Snakemake starts a rule's: is SIGUSR1 ignored in it?
    mask = subprocess.run(["bash", "-c", "grep SigIgn /proc/self/status"], capture_output=True,
                          text=True, check=True).stdout.split()[1]
    child = bool(int(mask, 16) & (1 << (signal.SIGUSR1 - 1)))
    print(here, child)
    """
)


@pytest.mark.parametrize(("job", "ignored"), [("4711", "True True"), (None, "False False")])
def test_snakemake_in_a_slurm_job_ignores_the_warning(job, ignored):
    """In a job (SLURM_JOB_ID), the Snakemake process and the shells it starts ignore SIGUSR1;
    outside one nothing changes. A real job: tests/e2e/test_slurm_preempt.py."""
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    env["PYTHONPATH"] = str(REPO)
    if job:
        env["SLURM_JOB_ID"] = job
    out = subprocess.run(
        [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ignored.split()


def test_the_trainer_handles_the_warning_it_inherits_ignored(tmp_path):
    """An ignored SIGUSR1, inherited from Snakemake, does not stop the trainer's handler."""
    code = textwrap.dedent(
        """
        import os, signal
        from sstl.train.preempt import Preemption
        with Preemption() as p:
            os.kill(os.getpid(), signal.SIGUSR1)
            print(p.requested, p.describe())
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGUSR1, signal.SIG_IGN),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["True", "SIGUSR1"]
