"""Graceful stop on preemption: a signal sets a flag, the loop saves its state and exits 75.

Slurm sends SIGTERM on preemption and timeouts, and ``--signal=USR1@N`` (the workflow's
``resources.<rule>.warn_seconds``) sends SIGUSR1 to every process of the job step N seconds before
the time limit; the Snakemake process around the trainer ignores it (``sstl.slurm_job.
ignore_warning_signal``), and an inherited SIG_IGN does not stop the handler installed here. The
handler only sets ``Preemption.requested``; the training loop
checks it at step boundaries (:meth:`Preemption.should_stop`, all-reduced under DDP so every rank
stops after the same step), writes its resume state and exits with :data:`EXIT_REQUEUE`. With
``SLURM_JOB_ID`` set and ``SSTL_REQUEUE=1`` the job also asks Slurm to requeue itself; the
requeued job finds the resume state and continues.

Slurm signals every process of the step, DataLoader workers included, and torch's workers die on a
SIGTERM that does not come from their parent; the loader then raises in the main process in the
middle of a step, before it can save. Pass :func:`ignore_in_worker` as the loader's
``worker_init_fn``: workers then ignore both signals and end with their loader as usual (or,
orphaned, by their parent-death check; Slurm's SIGKILL after ``KillWait`` ends anything left).
Other forked children inherit the handler, which does nothing in them. The one cost: an
exception leaves the workers alive, and Python's exit handler, which terminates (SIGTERM) then
joins them, would wait forever; the engine calls :func:`stop_workers` on its way out.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import subprocess
import threading
from types import FrameType, TracebackType

import torch

from sstl.collectives import all_reduce_flag
from sstl.runtime import STOP_SIGNALS, early_stop_signals

log = logging.getLogger(__name__)

EXIT_REQUEUE = 75  # EX_TEMPFAIL: "try again later"; the workflow treats it as a requeue

SIGNALS = STOP_SIGNALS


class Preemption:
    """Context manager: installs SIGTERM/SIGUSR1 handlers that set :attr:`requested`."""

    def __init__(self) -> None:
        self.requested = False
        self.signum: int | None = None
        self._pid = os.getpid()
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if os.getpid() != self._pid:  # a forked loader worker: the main process decides
            return
        self.requested = True
        self.signum = signum

    def __enter__(self) -> Preemption:
        if threading.current_thread() is threading.main_thread():
            for sig in SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
            if early_stop_signals:  # came during start-up (sstl.runtime.catch_stop_signals)
                self.requested, self.signum = True, early_stop_signals[-1]
                early_stop_signals.clear()
        else:
            log.warning("not in the main thread: preemption signals are not handled")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for sig, prev in self._previous.items():
            signal.signal(sig, prev)  # type: ignore[arg-type]
        self._previous.clear()

    def should_stop(self, device: torch.device | None = None) -> bool:
        """The flag, OR-ed over all ranks when a process group is up (call on every rank)."""
        return all_reduce_flag(self.requested, device or torch.device("cpu"))

    def describe(self) -> str:
        return signal.Signals(self.signum).name if self.signum else "a stop request"


def ignore_in_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: the worker ignores SIGTERM/SIGUSR1 (see the module doc)."""
    for sig in SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def stop_workers(timeout: float = 5.0) -> None:
    """Kill the DataLoader workers still alive when a run ends (after an error, mostly): they
    ignore SIGTERM, so the interpreter's exit would hang joining them."""
    for child in multiprocessing.active_children():
        child.kill()
        child.join(timeout)


def request_requeue() -> bool:
    """``scontrol requeue $SLURM_JOB_ID`` when ``SSTL_REQUEUE=1`` in a Slurm job (best effort).

    Returns whether the request was accepted. Failures are logged, never raised: the resume state
    is already on disk and a manual resubmission continues from it.
    """
    job = os.environ.get("SLURM_JOB_ID")
    if not job or os.environ.get("SSTL_REQUEUE") != "1":
        return False
    try:
        out = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError) as err:
        log.warning("scontrol requeue %s failed: %s", job, err)
        return False
    if out.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job, out.stderr.strip())
        return False
    log.info("requested requeue of Slurm job %s", job)
    return True
