"""The per-run lock on a state folder, between real separate processes."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sstl.train.runlock import LOCK_NAME, RunLock, RunLockedError

REPO = Path(__file__).resolve().parents[2]

# A run holding the lock: prints "locked", then waits for a line on stdin before releasing.
_HOLDER = textwrap.dedent(
    """
    import sys
    from sstl.train.runlock import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)

# A second run of the same job: exit 0 when it got the lock, 3 with the message when refused.
_SECOND = textwrap.dedent(
    """
    import sys
    from sstl.train.runlock import RunLock, RunLockedError
    try:
        with RunLock(sys.argv[1]):
            pass
    except RunLockedError as err:
        print(err)
        sys.exit(3)
    """
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "SLURM_JOB_ID"}
    return {**env, "PYTHONPATH": str(REPO), **extra}


def _start_holder(folder: Path, **env: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(folder)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(**env),
    )
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _second(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _SECOND, str(folder)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=60,
    )


def test_second_run_is_refused_naming_the_holder_then_runs_after_release(tmp_path):
    holder = _start_holder(tmp_path / "state", SLURM_JOB_ID="4242")
    try:
        second = _second(tmp_path / "state")
        assert second.returncode == 3, second.stderr
        msg = second.stdout
        assert f"host {socket.gethostname()}" in msg and f"pid {holder.pid}" in msg, msg
        assert "Slurm job 4242" in msg and "scancel 4242" in msg and str(tmp_path / "state") in msg
        # the holder's own process refuses a second lock too (flock is per open file)
        with pytest.raises(RunLockedError, match=f"pid {holder.pid}"):
            RunLock(tmp_path / "state").acquire()
    finally:
        out, _ = holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and "released" in out
    assert _second(tmp_path / "state").returncode == 0


def test_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
    holder = _start_holder(tmp_path / "state")
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    holder.stdin.close(), holder.stdout.close()
    details = json.loads((tmp_path / "state" / LOCK_NAME).read_text())
    assert details["pid"] == holder.pid  # a kill -9 leaves the details, not the lock
    with (
        caplog.at_level(logging.WARNING, logger="sstl.train.runlock"),
        RunLock(tmp_path / "state"),
    ):
        mine = json.loads((tmp_path / "state" / LOCK_NAME).read_text())
        assert mine["pid"] == os.getpid()
        assert _second(tmp_path / "state").returncode == 3
    assert f"pid {holder.pid}" in caplog.text and "taking over" in caplog.text
    assert (tmp_path / "state" / LOCK_NAME).read_text() == ""  # clean release: no details


def test_clean_release_is_not_reported_as_a_takeover(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="sstl.train.runlock"):
        with RunLock(tmp_path):
            pass
        with RunLock(tmp_path):
            pass
    assert "taking over" not in caplog.text


def test_refusal_while_a_forked_child_of_a_dead_run_holds_it(tmp_path):
    """A loader worker forked by the run keeps the lock after the run itself was killed."""
    code = textwrap.dedent(
        """
        import os, sys, time
        from sstl.train.runlock import RunLock
        RunLock(sys.argv[1]).acquire()
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        print("locked", flush=True)
        time.sleep(30)
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        second = _second(tmp_path)
        assert second.returncode == 3
        assert f"pid {proc.pid}" in second.stdout and "forked" in second.stdout
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.stdout.close()
