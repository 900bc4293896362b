"""What a Slurm job needs from the workflow, and what it must leave to the cluster's profile.

The config's ``resources:`` holds job sizes only; partitions, accounts, QOS, constraints and GPU
types belong to the Slurm profile (``workflow/profiles/slurm/``) or the command line, so a config
holding one is an error that says where it goes. ``warn_seconds`` becomes ``sbatch
--signal=USR1@N`` (``workflow/rules/common.smk``), and :func:`ignore_warning_signal` lets that
signal reach the trainer alive.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Mapping
from typing import Any

# Where a job runs is the cluster's business: these keys belong to the Slurm profile (resource
# names on the right), never to the config, which holds only job sizes.
CLUSTER_KEYS = {
    "partition": "slurm_partition",
    "account": "slurm_account",
    "qos": "qos",
    "constraint": "constraint",
    "gpu_model": "gpu_model",
}


class SlurmJobError(ValueError):
    """A resources setting that cannot work on Slurm; the message says what to do instead."""


def check_cluster_keys(config: Mapping[str, Any]) -> None:
    """A partition, account, QOS, constraint or GPU type in ``resources:`` is an error that says
    where it goes instead (a schema error would only list the allowed keys)."""
    sections = config.get("resources")
    for rule, section in sections.items() if isinstance(sections, Mapping) else ():
        if not isinstance(section, Mapping):
            continue  # the schema names it
        for key in sorted(set(section) & set(CLUSTER_KEYS)):
            name = CLUSTER_KEYS[key]
            raise SlurmJobError(
                f"resources.{rule}.{key} = {section[key]!r}: the config holds job sizes only; "
                f"where jobs run belongs to the Slurm profile. Remove it and set {name} in "
                f"workflow/profiles/slurm/config.yaml (default-resources: for every job, "
                f"set-resources: {rule}: for this rule) or on the command line "
                f"(--set-resources {rule}:{name}=...); see README, Running on a Slurm cluster"
            )


def check_warning(rule: str, res: Mapping[str, Any]) -> None:
    """``warn_seconds`` of a rule's merged resources must fall inside its runtime, or Slurm would
    signal the job at its start."""
    warn, runtime = res.get("warn_seconds", 0), res.get("runtime")
    if warn and runtime is not None and warn >= 60 * runtime:
        raise SlurmJobError(
            f"resources.{rule}.warn_seconds = {warn} is not shorter than its runtime of "
            f"{runtime} min ({60 * runtime} s): Slurm would send the warning at the job's "
            f"start. Lower warn_seconds or raise resources.{rule}.runtime"
        )


def ignore_warning_signal() -> None:
    """In a Slurm job, make this Snakemake process, and what it starts, ignore SIGUSR1.

    ``--signal=USR1@N`` (resources' ``warn_seconds``) reaches every process of the job's steps:
    the Slurm jobstep plugin's inner Snakemake, the rule's shell and the trainer. Only the trainer
    handles it (it saves and exits 75); Snakemake and bash would die of it (the default action),
    and the job with them, before the save. An ignored signal stays ignored across fork and exec,
    and the trainer's own handler (``sstl.train.preempt``) replaces it. ``B:USR1`` is no
    alternative: it reaches only the batch shell, whose death ends the job at once.
    """
    if os.environ.get("SLURM_JOB_ID") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGUSR1, signal.SIG_IGN)
