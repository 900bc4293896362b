"""One run per state folder: an exclusive lock that names its holder and dies with it.

Two runs of the same job (a resubmission while the first still runs, a second Snakemake started
by hand, a requeued Slurm job whose old allocation lingers) would write the same ``state/``
at once and interleave their saves. The first run holds ``<state>/run.lock``; a second refuses
with the holder's host, pid and Slurm job id.

The lock is ``flock`` on the file: the kernel drops it when its holder's last descriptor closes,
so a run killed by ``kill -9``, the OOM killer or Slurm leaves no lock behind. The file keeps
the last holder's details, and a run that finds them without a lock says it takes over from that
(dead) process. NFS v4 and Lustre (mounted with ``flock``) lock across nodes; a filesystem
without locks gets a warning and the run goes on unlocked, as before. Take the lock in ONE
process per job (rank 0 under DDP); forked loader workers share it, which is harmless.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

from sstl.files import pid_alive
from sstl.runtime import UserError

log = logging.getLogger(__name__)

LOCK_NAME = "run.lock"
_NO_LOCKS = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


class RunLockedError(UserError):
    """Another live run holds the state folder."""

    def __init__(self, folder: Path, holder: dict[str, Any] | None) -> None:
        who = describe(holder) if holder else "a process that has not written its details yet"
        if holder and holder.get("host") == socket.gethostname() and not pid_alive(holder["pid"]):
            who += "; that pid has exited but a process it forked still holds the lock"
        job = (holder or {}).get("slurm_job_id")
        stop = f"`scancel {job}`" if job else "stopping that process"
        super().__init__(
            f"the state folder {folder} is in use by another run of this job ({who}). Two runs "
            f"would overwrite each other's resume state: wait for it to finish, or end it "
            f"({stop}) and start again."
        )
        self.folder, self.holder = folder, holder


def describe(holder: dict[str, Any]) -> str:
    """``host node1, pid 123, Slurm job 456, since 2025-01-01 10:00:00``."""
    parts = [f"host {holder.get('host', '?')}", f"pid {holder.get('pid', '?')}"]
    if holder.get("slurm_job_id"):
        parts.append(f"Slurm job {holder['slurm_job_id']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    return ", ".join(parts)


def _holder_info() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _read(fd: int) -> dict[str, Any] | None:
    raw = os.pread(fd, 4096, 0)
    try:
        data = json.loads(raw)
    except ValueError:  # empty (released cleanly) or cut off
        return None
    return data if isinstance(data, dict) else None


class RunLock:
    """``with RunLock(state_dir):`` holds ``state_dir/run.lock`` for the block.

    Raises :class:`RunLockedError` when another live process holds it.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = None
            for _ in range(20):  # the holder writes its details right after locking
                if (holder := _read(fd)) is not None:
                    break
                time.sleep(0.05)
            os.close(fd)
            raise RunLockedError(self.folder, holder) from None
        except OSError as err:
            os.close(fd)
            if err.errno not in _NO_LOCKS:
                raise
            log.warning(
                "cannot lock %s (%s): this filesystem has no file locks, so nothing stops a "
                "second run of this job from writing the same state",
                self.path,
                err.strerror,
            )
            return self
        previous = _read(fd)
        if previous is not None:
            log.warning(
                "taking over %s from a run that ended without releasing it (%s)",
                self.path,
                describe(previous),
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder_info()).encode(), 0)
        os.fsync(fd)
        self.fd = fd
        return self

    def release(self) -> None:
        """Unlock; the emptied file tells the next run this one ended cleanly."""
        if self.fd is None:
            return
        try:
            os.ftruncate(self.fd, 0)
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
