"""Training curves: both stages write curves.csv, epochs.csv, (fine-tuning) validation.csv and
curves.png at the end of the run from the whole run's logs (across a preemption and resume), and
TensorBoard scalars."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from sstl.models.weights import SCRATCH
from sstl.train.curves import DPI, SIZE, write_curves


def curve_args(out: Path) -> list[str]:
    return ["--curves", str(out / "curves dir"), "--tensorboard", str(out / "tb")]


def scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] of one TensorBoard run (the event files in ``run_dir``), as
    TensorBoard shows them (after the purges a resume writes)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def assert_png(path: Path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size == (round(SIZE[0] * DPI), round(SIZE[1] * DPI))


def test_tables_and_plot_from_records(tmp_path):
    steps = [
        {"step": s, "epoch": (s - 1) // 2, "lr": 0.1 / s, "loss_total": 3.0 - s / 10,
         "loss_ctr": 2.0, "train_acc": 10.0 * s, "data_s": 0.01}
        for s in range(1, 7)
    ]  # fmt: skip
    epochs = [
        {"step": 2, "epoch": 1, "loss_total": 2.85, "epoch_s": 1.0},  # not validated
        {"step": 4, "epoch": 2, "loss_total": 2.65, "epoch_s": 1.0, "val_clip_acc": 40.0},
        {"step": 6, "epoch": 3, "loss_total": 2.45, "epoch_s": 1.0, "val_clip_acc": 55.0},
    ]
    write_curves(steps, epochs, "finetune: test", tmp_path, validates=True)
    table = pd.read_csv(tmp_path / "curves.csv")
    assert list(table.columns) == [
        "step", "epoch", "lr", "loss_total", "loss_ctr", "data_s", "train_acc",
    ]  # fmt: skip
    assert table["step"].tolist() == list(range(1, 7))
    epoch_table = pd.read_csv(tmp_path / "epochs.csv")
    assert list(epoch_table.columns)[:3] == ["epoch", "step", "loss_total"]
    assert math.isnan(epoch_table["val_clip_acc"][0]) and epoch_table["val_clip_acc"][2] == 55.0
    # DVC draws an empty cell as 0: its validation table holds only the validated epochs
    assert (
        tmp_path / "validation.csv"
    ).read_text() == "epoch,step,val_clip_acc\n2,4,40.0\n3,6,55.0\n"
    assert_png(tmp_path / "curves.png")
    names = sorted(p.name for p in tmp_path.iterdir())  # and no temporary file
    assert names == ["curves.csv", "curves.png", "epochs.csv", "validation.csv"]


def test_no_logged_step_still_writes_headers_and_a_plot(tmp_path):
    write_curves([], [], "pretrain: nothing", tmp_path / "new folder")
    assert (tmp_path / "new folder/curves.csv").read_text().strip() == "step,epoch,lr,loss_total"
    assert (tmp_path / "new folder/epochs.csv").read_text().strip() == "epoch,step,loss_total"
    assert_png(tmp_path / "new folder/curves.png")
    assert not (tmp_path / "new folder/validation.csv").exists()  # a stage that validates not
    write_curves([], [{"epoch": 1, "step": 2, "loss_total": 1.0}], "finetune", tmp_path, True)
    assert (tmp_path / "validation.csv").read_text() == "epoch,step,val_clip_acc\n"


def test_pretraining_writes_curves_and_tensorboard(tiny_data, helpers, tmp_path):
    cfg = helpers.tiny_cfg(optim={"epochs": 2, "batch_size": 4, "lr": 0.05, "ref_batch": 4})
    proc = helpers.run_sstl(
        "pretrain", *helpers.pretrain_argv(tiny_data, tmp_path, cfg), *curve_args(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "curves dir"
    assert sorted(p.name for p in out.iterdir()) == ["curves.csv", "curves.png", "epochs.csv"]
    steps = pd.read_csv(out / "curves.csv")
    assert steps["step"].tolist() == list(range(1, 9))  # 16 videos, batch 4, 2 epochs
    for column in ("lr", "loss_total", "loss_ctr", "loss_video", "loss_spd", "clips_per_s"):
        assert steps[column].notna().all(), column
    assert steps["lr"].iloc[-1] < steps["lr"].iloc[0]  # the cosine schedule is in the curve
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs["epoch"].tolist() == [1, 2] and epochs["step"].tolist() == [4, 8]
    assert epochs["loss_total"].iloc[1] == pytest.approx(steps["loss_total"][4:].mean())
    assert_png(out / "curves.png")
    steps_tb, epochs_tb = scalars(tmp_path / "tb"), scalars(tmp_path / "tb" / "epochs")
    assert [s for s, _ in steps_tb["pretrain/loss_total"]] == list(range(1, 9))
    assert [s for s, _ in epochs_tb["pretrain/loss_total"]] == [4, 8]


def test_finetuning_curves_span_a_preemption(tiny_data, helpers, tmp_path):
    """SIGTERM mid-run (exit 75, no curves yet), then the rerun resumes and ends: the curves hold
    every step once, the validation accuracy of the validated epochs, in the CSV and TensorBoard."""
    cfg = helpers.finetune_cfg(
        optim={"epochs": 3, "milestones": [1], "gamma": 0.1}, run={"save_every": 1}, val_every=2
    )
    argv = [*helpers.finetune_argv(tiny_data, tmp_path, cfg, SCRATCH), *curve_args(tmp_path)]
    proc = subprocess.Popen(
        helpers.sstl_command("finetune", *argv),
        cwd=helpers.REPO,
        env=helpers.subprocess_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    state = tmp_path / "state" / "resume.pt"
    deadline = time.time() + 120
    while not state.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 75, err[-3000:]
    assert not (tmp_path / "curves dir").exists()  # only a finished run writes its curves

    done = helpers.run_sstl("finetune", *argv)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "resuming at epoch" in done.stderr
    out = tmp_path / "curves dir"
    steps = pd.read_csv(out / "curves.csv")
    assert steps["step"].tolist() == list(range(1, 13))  # 16 videos, batch 4, 3 epochs
    assert steps["train_acc"].between(0, 100).all()
    # the rate each step trained with: 0.02 in epoch 0, x0.1 from the milestone (epoch 1) on
    assert steps["lr"].tolist() == pytest.approx([0.02] * 4 + [0.002] * 8)
    epochs = pd.read_csv(out / "epochs.csv")
    assert epochs["epoch"].tolist() == [1, 2, 3]
    validated = epochs["val_clip_acc"].notna().tolist()
    assert validated == [False, True, True]  # val_every 2, and the last epoch
    validation = pd.read_csv(out / "validation.csv")
    assert validation["epoch"].tolist() == [2, 3] and validation["step"].tolist() == [8, 12]
    assert validation["val_clip_acc"].tolist() == epochs["val_clip_acc"][1:].tolist()
    assert_png(out / "curves.png")
    steps_tb, epochs_tb = scalars(tmp_path / "tb"), scalars(tmp_path / "tb" / "epochs")
    assert sorted(s for s, _ in steps_tb["finetune/loss_total"]) == list(range(1, 13))
    assert [s for s, _ in sorted(epochs_tb["finetune/val_clip_acc"])] == [8, 12]
