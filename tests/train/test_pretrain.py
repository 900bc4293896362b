"""``sstl pretrain`` end to end on the tiny synthetic store: learning, outputs, start-up checks."""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import subprocess

import numpy as np
import pytest
import torch

from sstl.cli import main
from sstl.config import OptimConfig, PretrainConfig, load_section
from sstl.data.clips import load_manifest
from sstl.files import config_hash
from sstl.models.weights import read_pretrained
from sstl.train.optim import lr_factor
from sstl.train.pretrain import identity


def test_loss_falls_and_outputs_are_written(tiny_data, tmp_path, helpers):
    """30 steps (batch 8, r3d_tiny width 8, 8x28x28 clips): the heads learn, outputs are written."""
    cfg = helpers.tiny_cfg(
        optim={"epochs": 15, "batch_size": 8, "lr": 0.1, "ref_batch": 8}, run={"save_every": 10}
    )
    argv = [*helpers.pretrain_argv(tiny_data, tmp_path, cfg), "--tensorboard", str(tmp_path / "tb")]
    run = subprocess.run(
        helpers.sstl_command("pretrain", *argv),
        cwd=helpers.REPO,
        env=helpers.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = helpers.read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == list(range(1, 31))
    assert {"lr", "loss_ctr", "loss_video", "loss_spd", "loss_total", "clips_per_s", "data_s"} <= (
        metrics[0].keys()
    )
    # the total is no learning signal this early: the contrastive term RISES while the memory
    # bank fills with trained features (its negatives get harder), so check the heads it trains
    spd = [m["loss_spd"] for m in metrics]
    assert np.mean(spd[-5:]) < 0.5 * np.mean(spd[:5]), spd  # playback-rate head learns
    total = [m["loss_total"] for m in metrics]
    assert all(np.isfinite(total))
    # the video loss is a negative cosine: it moves toward -1 as the memory rows fill
    assert metrics[-1]["loss_video"] < metrics[0]["loss_video"] - 0.3
    assert metrics[-1]["lr"] < metrics[0]["lr"]  # cosine decay

    model, config, meta = read_pretrained(tmp_path / "weights.pt")
    assert meta["steps"] == 30 and meta["final_loss"] == pytest.approx(total[-1])
    ids = load_manifest(tiny_data.manifest, split="train")["id"].tolist()
    assert meta["config_hash"] == config_hash(identity(load_section(PretrainConfig, config), ids))
    assert "sha" in meta["git"] and "dirty" in meta["git"]
    assert config["optim"]["batch_size"] == 8
    clips = torch.randn(2, 3, 8, 28, 28)
    assert model.eval()(clips)["proj"].shape == (2, 16)
    assert "git" in run.stderr and "resolved config" in run.stderr
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "state" / "resume.pt").is_file()  # kept after success (see docstring)


def test_memory_off_and_no_speed_head_run(tiny_data, tmp_path, helpers):
    cfg = helpers.tiny_cfg(
        memory={"enabled": False},
        model={"speed_head": False},
        spatial={"enabled": False},
        run={"max_steps": 3},
    )
    run = helpers.run_pretrain(tiny_data, tmp_path, cfg)
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = helpers.read_metrics(tmp_path / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    assert "loss_video" not in metrics[0] and "loss_spd" not in metrics[0]
    state = torch.load(tmp_path / "state" / "resume.pt", weights_only=True)
    assert state["memory"] is None and state["progress"]["step"] == 3


@pytest.mark.parametrize(
    ("override", "setting"),
    [
        ({"temporal": {"clip_len": 8, "buffer": 4, "n_drop": 7}}, "temporal.n_drop"),
        ({"loss": {"temperature": -0.1}}, "loss.temperature"),
        ({"memory": {"momentum": 1.5}}, "memory.momentum"),
    ],
)
def test_bad_settings_fail_at_start(tmp_path, helpers, capsys, override, setting):
    """``sstl pretrain`` rejects them before reading data: manifest and store do not even exist."""
    argv = helpers.pretrain_argv(_no_data(tmp_path), tmp_path / "out", helpers.tiny_cfg(**override))
    assert main(["pretrain", *argv]) == 2
    assert setting in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_not_divisible_by_world_size_fails_before_joining(tmp_path, helpers):
    cfg = helpers.tiny_cfg(optim={"batch_size": 8})
    env = helpers.subprocess_env(
        RANK="0", WORLD_SIZE="3", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="1"
    )
    run = subprocess.run(
        helpers.sstl_command("pretrain", *helpers.pretrain_argv(_no_data(tmp_path), tmp_path, cfg)),
        cwd=helpers.REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0
    assert "optim.batch_size = 8" in run.stderr and "3 processes" in run.stderr


def _no_data(tmp_path):
    class Missing:
        manifest = tmp_path / "missing.csv"
        store = tmp_path / "missing-store"

    return Missing


def test_lr_schedule_warmup_then_cosine_to_zero():
    cfg = OptimConfig(epochs=10, warmup_epochs=2)
    factors = [lr_factor(s, cfg, steps_per_epoch=5) for s in range(50)]
    assert factors[:10] == pytest.approx([(s + 1) / 10 for s in range(10)])
    assert factors[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[10:]))
    assert factors[-1] < 0.01
    step = OptimConfig(epochs=10, schedule="multistep", milestones=(4, 8), gamma=0.1)
    assert [lr_factor(s, step, 5) for s in (19, 20, 39, 40)] == pytest.approx([1.0, 0.1, 0.1, 0.01])


def test_resume_identity_ignores_execution_only_settings_but_not_the_videos():
    def resume_hash(cfg, ids):
        return config_hash(identity(cfg, ids))

    ids = ["a/v1", "b/v2"]
    base = PretrainConfig()
    same = PretrainConfig()
    same.run.workers, same.run.save_every, same.run.max_steps = 7, 3, 99
    other = PretrainConfig()
    other.optim.lr = 1.0
    assert resume_hash(base, ids) == resume_hash(same, ids) != resume_hash(other, ids)
    assert resume_hash(base, ids) != resume_hash(base, ids[:1])


def test_a_loader_error_ends_the_run_instead_of_hanging(tiny_data, tmp_path, helpers):
    # the loader's workers ignore SIGTERM (preemption); after an error in one of them the run
    # must still exit, with the error, instead of waiting forever on its workers
    store = tmp_path / "store"
    shutil.copytree(tiny_data.store, store)
    for video in store.rglob("*.mp4"):  # present (the dataset checks that) but undecodable
        video.write_bytes(b"not a video")
    data = dataclasses.replace(tiny_data, store=store)
    cfg = helpers.tiny_cfg(run={"workers": 1})
    run = subprocess.run(
        helpers.sstl_command("pretrain", *helpers.pretrain_argv(data, tmp_path / "out", cfg)),
        cwd=helpers.REPO,
        env=helpers.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode not in (0, 75), run.stderr[-2000:]
    assert "VideoDecodeError" in run.stderr
