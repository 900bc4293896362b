"""Resume after ``kill -9`` and after SIGTERM, stale states, and the preemption handler."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest
import torch

from sstl.train.preempt import EXIT_REQUEUE, Preemption, request_requeue

# 16 videos / batch 4 = 4 steps an epoch; 8 epochs = 32 steps; a state every 2 steps. The reference
# runs without loader workers, the interrupted runs with one: samples must not depend on that.
RESUME_CFG = {"optim": {"epochs": 8}, "run": {"save_every": 2}}
WORKER_CFG = {"optim": {"epochs": 8}, "run": {"save_every": 2, "workers": 1}}


def start(helpers, data, out: Path, cfg: dict) -> subprocess.Popen:
    """The run in its own process group, so a signal can reach it and its loader worker at once."""
    return subprocess.Popen(
        helpers.sstl_command("pretrain", *helpers.pretrain_argv(data, out, cfg)),
        cwd=helpers.REPO,
        env=helpers.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_for_step(proc: subprocess.Popen, metrics: Path, step: int, timeout: float = 120) -> None:
    """Poll until the metrics file has reached ``step`` (and a resume state exists)."""
    deadline = time.monotonic() + timeout
    state = metrics.parent / "state" / "resume.pt"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(
                f"run ended (rc {proc.returncode}) before step {step}: {proc.stderr.read()}"
            )
        lines = metrics.read_text().splitlines() if metrics.is_file() else []
        if state.is_file() and len(lines) >= step:
            return
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"step {step} not reached in {timeout} s")


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "weights.pt", weights_only=True)["model"]


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory, helpers):
    """The uninterrupted deterministic run every resumed run must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("reference")
    run = helpers.run_pretrain(tiny_data, out, helpers.tiny_cfg(**RESUME_CFG))
    assert run.returncode == 0, run.stderr[-3000:]
    state = torch.load(out / "state" / "resume.pt", weights_only=True)
    return weights(out), state["memory"]["memory"]


@pytest.mark.slow
def test_kill_9_then_rerun_gives_the_same_weights(tiny_data, tmp_path, helpers, reference):
    cfg = helpers.tiny_cfg(**WORKER_CFG)
    proc = start(helpers, tiny_data, tmp_path, cfg)
    wait_for_step(proc, tmp_path / "metrics.jsonl", step=5)  # states at 2 and 4 exist
    os.killpg(proc.pid, signal.SIGKILL)  # no handler runs, nothing is flushed or saved
    proc.wait(timeout=30)
    proc.stderr.close()
    assert not (tmp_path / "weights.pt").exists(), "the run finished before it was killed"
    saved = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)["progress"]["step"]
    assert 2 <= saved < 32

    rerun = helpers.run_pretrain(tiny_data, tmp_path, cfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"step {saved})" in rerun.stderr  # "resuming at epoch e batch b (step s)"
    assert_bit_identical(weights(tmp_path), reference[0])
    bank = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)["memory"]["memory"]
    assert torch.equal(bank, reference[1])
    steps = [m["step"] for m in helpers.read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, 33))


@pytest.mark.slow
def test_sigterm_saves_exits_75_and_the_rerun_continues(tiny_data, tmp_path, helpers, reference):
    cfg = helpers.tiny_cfg(**WORKER_CFG)
    metrics = tmp_path / "metrics.jsonl"
    proc = start(helpers, tiny_data, tmp_path, cfg)
    wait_for_step(proc, metrics, step=3)
    os.killpg(proc.pid, signal.SIGTERM)  # as Slurm does: the main process and its loader worker
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_REQUEUE, stderr[-3000:]
    assert "stopped by SIGTERM" in stderr
    assert not (tmp_path / "weights.pt").exists()
    state = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)
    stopped = state["progress"]["step"]
    steps = [m["step"] for m in helpers.read_metrics(metrics)]
    assert steps == list(range(1, stopped + 1))  # the state is at the last finished step
    assert 3 <= stopped < 32

    rerun = helpers.run_pretrain(tiny_data, tmp_path, cfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    steps = [m["step"] for m in helpers.read_metrics(metrics)]
    assert steps == list(range(1, 33))
    assert_bit_identical(weights(tmp_path), reference[0])


@pytest.mark.slow
def test_sigusr1_at_an_epoch_boundary_then_exact_completion(
    tiny_data, tmp_path, helpers, reference
):
    """Slurm's time-limit warning (USR1 to the job step: the process and its workers) right
    after an epoch ends: saved, exit 75, and the rerun ends with the uninterrupted weights."""
    cfg = helpers.tiny_cfg(**WORKER_CFG)
    epochs = tmp_path / "epochs.jsonl"
    proc = start(helpers, tiny_data, tmp_path, cfg)
    deadline = time.monotonic() + 120
    while not (epochs.is_file() and epochs.read_text().count("\n") >= 2):
        assert proc.poll() is None and time.monotonic() < deadline, "epoch 2 never ended"
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGUSR1)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == EXIT_REQUEUE, stderr[-3000:]
    assert "stopped by SIGUSR1" in stderr
    rerun = helpers.run_pretrain(tiny_data, tmp_path, cfg)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    steps = [m["step"] for m in helpers.read_metrics(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, 33))
    assert_bit_identical(weights(tmp_path), reference[0])


def test_config_change_moves_the_old_state_aside(tiny_data, tmp_path, helpers):
    first = helpers.run_pretrain(tiny_data, tmp_path, helpers.tiny_cfg(run={"max_steps": 2}))
    assert first.returncode == 0, first.stderr[-3000:]
    old = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)["config_hash"]

    changed = helpers.tiny_cfg(loss={"temperature": 0.2}, run={"max_steps": 1})
    second = helpers.run_pretrain(tiny_data, tmp_path, changed)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "another config" in second.stderr
    assert (tmp_path / "state" / f"resume.pt.stale-{old}").is_file()
    state = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)
    assert state["config_hash"] != old and state["progress"]["step"] == 1  # started fresh
    assert [m["step"] for m in helpers.read_metrics(tmp_path / "metrics.jsonl")] == [1]


def test_preemption_flag_is_set_by_signals_and_handlers_restored():
    before = signal.getsignal(signal.SIGUSR1)
    with Preemption() as p:
        assert not p.should_stop()
        os.kill(os.getpid(), signal.SIGUSR1)
        time.sleep(0.01)
        assert p.requested and p.should_stop() and p.describe() == "SIGUSR1"
    assert signal.getsignal(signal.SIGUSR1) is before


def test_requeue_only_when_asked(monkeypatch, tmp_path):
    log = tmp_path / "calls.txt"
    script = tmp_path / "scontrol"
    script.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("SLURM_JOB_ID", "4242")
    monkeypatch.delenv("SSTL_REQUEUE", raising=False)
    assert request_requeue() is False and not log.exists()
    monkeypatch.setenv("SSTL_REQUEUE", "1")
    assert request_requeue() is True
    assert log.read_text().split() == ["requeue", "4242"]


@pytest.mark.slow
def test_a_second_run_on_the_same_state_refuses_and_leftovers_are_cleaned(
    tiny_data, tmp_path, helpers
):
    """Two runs of one job would interleave their saves: the second refuses, naming the first;
    a killed save's temporary file (its writer's pid is dead) is gone after the next start."""
    state = tmp_path / "state"
    state.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = state / f".resume.pt.tmp-{dead.pid}"
    leftover.write_bytes(b"half a state")
    cfg = helpers.tiny_cfg(**{"optim": {"epochs": 40}, "run": {"save_every": 2}})
    first = start(helpers, tiny_data, tmp_path, cfg)
    try:
        wait_for_step(first, tmp_path / "metrics.jsonl", step=2)
        assert not leftover.exists()
        second = helpers.run_pretrain(tiny_data, tmp_path, cfg)
        assert second.returncode == 1, second.stderr[-3000:]
        assert f"pid {first.pid}" in second.stderr and "in use by another run" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
        first.stderr.close()
    # the first holder is dead (kill -9): a new run takes the lock over and finishes
    rerun = helpers.run_pretrain(tiny_data, tmp_path, cfg, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
