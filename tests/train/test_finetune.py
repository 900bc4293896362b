"""``sstl finetune`` end to end on the tiny synthetic store: outputs, schedule, init, and
preemption / resume exactly as pretraining (the same engine)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from sstl.data.clips import load_manifest
from sstl.models.weights import SCRATCH, backbone_state_dict, load_finetuned
from sstl.train import checkpoint as ckpt
from sstl.train.finetune import class_names


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_epochs_from_pretrained_weights(tiny_data, pretrained_weights, helpers, tmp_path):
    cfg = helpers.finetune_cfg(optim={"milestones": [1], "gamma": 0.1})
    proc = helpers.run_sstl(
        "finetune", *helpers.finetune_argv(tiny_data, tmp_path, cfg, pretrained_weights)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "git" in proc.stderr and "resolved config" in proc.stderr  # provenance at start-up

    model, classes, meta = load_finetuned(tmp_path / "weights.pt")
    assert classes == tiny_data.classes and model.classifier[1].out_features == 4
    steps_per_epoch = tiny_data.train_videos // 4
    assert meta["epochs"] == 2 and meta["steps"] == 2 * steps_per_epoch
    assert len(meta["init_sha256"]) == 64 and meta["git"]["sha"]
    assert 0 <= meta["val_clip_acc"] <= 100
    x = torch.zeros(2, 3, 8, 28, 28)
    assert model.eval()(x).shape == (2, 4)

    epochs = records(tmp_path / "epochs.jsonl")
    assert [r["epoch"] for r in epochs] == [1, 2]
    assert [r["step"] for r in epochs] == [steps_per_epoch, 2 * steps_per_epoch]
    assert all(0 <= r["val_clip_acc"] <= 100 and r["loss_total"] > 0 for r in epochs)
    assert all(0 <= r["train_acc"] <= 100 for r in epochs)
    steps = records(tmp_path / "metrics.jsonl")  # one line per step (log_every 1)
    assert [r["step"] for r in steps] == list(range(1, 2 * steps_per_epoch + 1))
    # milestones are epochs: lr x gamma from epoch 1 on (lr 0.02 at batch 4 = ref_batch 4)
    assert steps[0]["lr"] == pytest.approx(0.02) and steps[-1]["lr"] == pytest.approx(0.002)
    state = ckpt.load_state(tmp_path / "state" / "resume.pt")
    assert state["progress"]["epoch"] == 2 and state["progress"]["step"] == meta["steps"]
    # trained: the backbone moved away from the pretrained weights
    pre = backbone_state_dict(pretrained_weights)
    key = "stem.0.weight"
    assert not torch.equal(model.backbone.state_dict()[key], pre[key])


def test_class_names_follow_the_labels(tiny_data):
    assert class_names(load_manifest(tiny_data.manifest)) == tiny_data.classes


def test_a_missing_init_is_a_config_error(tiny_data, helpers, tmp_path):
    argv = helpers.finetune_argv(tiny_data, tmp_path, helpers.finetune_cfg(), tmp_path / "no.pt")
    proc = helpers.run_sstl("finetune", *argv)
    assert proc.returncode == 2 and "is neither a pretraining weights file" in proc.stderr


# --- preemption and resume: the engine's guarantees, with loader workers ----------------------
# 16 train videos / batch 4 = 4 steps an epoch; 6 epochs = 24 steps; two loader workers; dropout
# draws from the global generator, so a resume is exact only when the RNG state is.
RESUME = {"optim": {"epochs": 6, "milestones": [3]}, "run": {"save_every": 2, "workers": 2}}
TOTAL_STEPS = 24


def start(helpers, data, out: Path, cfg: dict, init: str) -> subprocess.Popen:
    """The run in its own process group, so a signal reaches it and its workers at once."""
    return subprocess.Popen(
        helpers.sstl_command("finetune", *helpers.finetune_argv(data, out, cfg, init)),
        cwd=helpers.REPO,
        env=helpers.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def wait_until(proc: subprocess.Popen, ready, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"run ended (rc {proc.returncode}) before {what}: {proc.stderr.read()}")
        if time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"{what} not reached in {timeout} s")
        time.sleep(0.02)


def catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (Linux: SigCgt in /proc/pid/status)."""
    status = Path(f"/proc/{pid}/status").read_text()
    mask = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
    return bool(mask >> (sig - 1) & 1)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.is_file() else 0


def weights(out: Path) -> dict[str, torch.Tensor]:
    return torch.load(out / "weights.pt", weights_only=True)["model"]


def assert_bit_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"tensors differ after resume: {different[:5]}"


@pytest.fixture(scope="module")
def reference(tiny_data, pretrained_weights, tmp_path_factory, helpers):
    """The uninterrupted run every interrupted one must reproduce bit for bit."""
    out = tmp_path_factory.mktemp("ft_reference")
    run = helpers.run_sstl(
        "finetune",
        *helpers.finetune_argv(tiny_data, out, helpers.finetune_cfg(**RESUME), pretrained_weights),
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return weights(out)


def interrupt_and_finish(helpers, data, init, out, ready, what, sig) -> str:
    """Start a run, send ``sig`` to its whole process group once ``ready()``, rerun to the end;
    returns the interrupted run's stderr."""
    cfg = helpers.finetune_cfg(**RESUME)
    proc = start(helpers, data, out, cfg, init)
    wait_until(proc, ready, what)
    os.killpg(proc.pid, sig)
    _, stderr = proc.communicate(timeout=90)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 75, stderr[-3000:]  # saved, not crashed by a dead worker
        assert f"stopped by {signal.Signals(sig).name}" in stderr
    assert not (out / "weights.pt").exists(), "the run finished before it was interrupted"
    if sig != signal.SIGKILL:  # a caught signal saves to the end; kill -9 may cut a save short
        assert not list(out.glob("state/.*tmp*")), "a temporary state file was left behind"
    rerun = helpers.run_sstl("finetune", *helpers.finetune_argv(data, out, cfg, init))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not list(out.glob("state/.*tmp*")), "the rerun kept an interrupted save's leftover"
    assert re.search(r"resuming at epoch \d+ batch \d+ \(step \d+\)", rerun.stderr)
    steps = [r["step"] for r in records(out / "metrics.jsonl")]
    assert steps == list(range(1, TOTAL_STEPS + 1))  # no gap, no repeat across the resume
    return stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_process_group_signal_mid_epoch_then_exact_completion(
    tiny_data, pretrained_weights, tmp_path, helpers, reference, sig
):
    metrics = tmp_path / "metrics.jsonl"
    interrupt_and_finish(
        helpers, tiny_data, pretrained_weights, tmp_path,
        lambda: lines(metrics) >= 6, "step 6", sig,
    )  # fmt: skip
    assert_bit_identical(weights(tmp_path), reference)


@pytest.mark.slow
def test_signal_at_an_epoch_boundary_then_exact_completion(
    tiny_data, pretrained_weights, tmp_path, helpers, reference
):
    epochs = tmp_path / "epochs.jsonl"
    interrupt_and_finish(
        helpers, tiny_data, pretrained_weights, tmp_path,
        lambda: lines(epochs) >= 2, "the end of epoch 2", signal.SIGTERM,
    )  # fmt: skip
    assert_bit_identical(weights(tmp_path), reference)


@pytest.mark.slow
def test_kill_9_mid_epoch_then_exact_completion(
    tiny_data, pretrained_weights, tmp_path, helpers, reference
):
    state, metrics = tmp_path / "state" / "resume.pt", tmp_path / "metrics.jsonl"
    interrupt_and_finish(
        helpers, tiny_data, pretrained_weights, tmp_path,
        lambda: state.is_file() and lines(metrics) >= 7, "step 7", signal.SIGKILL,
    )  # fmt: skip
    assert_bit_identical(weights(tmp_path), reference)


@pytest.mark.slow
def test_signal_during_start_up_saves_and_exits_75(
    tiny_data, pretrained_weights, tmp_path, helpers, reference
):
    """A signal before the first step (model and loaders still being built) is not lost."""
    cfg = helpers.finetune_cfg(**RESUME)
    proc = start(helpers, tiny_data, tmp_path, cfg, pretrained_weights)
    # as soon as the process catches SIGTERM (the command's first act, before importing torch)
    wait_until(proc, lambda: catches(proc.pid, signal.SIGTERM), "the SIGTERM handler")
    os.killpg(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 75, stderr[-3000:]
    saved = ckpt.load_state(tmp_path / "state" / "resume.pt")["progress"]
    assert saved["step"] < TOTAL_STEPS
    rerun = helpers.run_sstl(
        "finetune", *helpers.finetune_argv(tiny_data, tmp_path, cfg, pretrained_weights)
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert_bit_identical(weights(tmp_path), reference)


def test_sigterm_then_a_rerun_with_max_steps(tiny_data, helpers, tmp_path):
    """The rerun continues from the state: max_steps is not part of the resume identity."""
    cfg = helpers.finetune_cfg(optim={"epochs": 50}, run={"save_every": 1})
    proc = start(helpers, tiny_data, tmp_path, cfg, SCRATCH)
    state_path = tmp_path / "state" / "resume.pt"
    wait_until(proc, state_path.is_file, "the first state")
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err[-3000:]
    saved = ckpt.load_state(state_path)["progress"]
    assert saved["step"] >= 1 and saved["step"] == 4 * saved["epoch"] + saved["batch"]

    cfg["run"]["max_steps"] = saved["step"] + 2
    done = helpers.run_sstl("finetune", *helpers.finetune_argv(tiny_data, tmp_path, cfg, SCRATCH))
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = re.search(r"resuming at epoch (\d+) batch (\d+) \(step (\d+)\)", done.stderr)
    assert resumed, done.stderr[-3000:]
    assert [int(g) for g in resumed.groups()] == [saved["epoch"], saved["batch"], saved["step"]]
    _, _, meta = load_finetuned(tmp_path / "weights.pt")
    assert meta["steps"] == saved["step"] + 2
    steps = [r["step"] for r in records(tmp_path / "metrics.jsonl")]
    assert steps == list(range(1, saved["step"] + 3))
