"""``sstl finetune`` end to end on the tiny synthetic store: outputs, schedule, init, resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time

import pytest
import torch

from sstl.config import ConfigError
from sstl.data.clips import load_manifest
from sstl.models.sstl import backbone_state_dict
from sstl.train import checkpoint as ckpt
from sstl.train.finetune import finetune_config
from sstl.train.finetune_data import class_names
from sstl.train.finetune_model import SCRATCH, build_model, load_finetuned


def argv(data, out, cfg, init, h):
    return [
        "--cfg",
        h.json(cfg),
        "--manifest",
        str(data.manifest),
        "--store",
        str(data.store),
        "--init",
        str(init),
        "--out",
        str(out / "weights.pt"),
        "--state-dir",
        str(out / "state"),
        "--metrics",
        str(out / "metrics.jsonl"),
    ]


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_two_epochs_from_pretrained_weights(tiny_data, pretrained_weights, h, tmp_path):
    cfg = h.finetune_cfg(optim={"milestones": [1], "gamma": 0.1})
    proc = h.run_sstl("finetune", *argv(tiny_data, tmp_path, cfg, pretrained_weights, h))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "git" in proc.stderr and "resolved config" in proc.stderr  # provenance at start-up

    model, classes, meta = load_finetuned(tmp_path / "weights.pt")
    assert classes == tiny_data.classes and model.classifier[1].out_features == 4
    assert meta["epochs"] == 2 and meta["steps"] == 2 * tiny_data.train_videos // 4
    assert meta["init_sha256"] != SCRATCH and meta["git"]["sha"]
    x = torch.zeros(2, 3, h.clip_len, h.crop, h.crop)
    assert model.eval()(x).shape == (2, 4)

    lines = records(tmp_path / "metrics.jsonl")
    assert [r["epoch"] for r in lines] == [1, 2]
    assert all(0 <= r["val_clip_acc"] <= 100 and r["loss"] > 0 for r in lines)
    # milestones are epochs: lr x gamma from epoch 1 on (lr 0.02 at batch 4 = ref_batch 4)
    assert lines[0]["lr"] == pytest.approx(0.02) and lines[1]["lr"] == pytest.approx(0.002)
    state = ckpt.load_state(tmp_path / "state" / "resume.pt")
    assert state["progress"]["epoch"] == 2 and state["progress"]["step"] == meta["steps"]
    # trained: the backbone moved away from the pretrained weights
    pre = backbone_state_dict(pretrained_weights)
    key = "stem.0.weight"
    assert not torch.equal(model.backbone.state_dict()[key], pre[key])


def test_init_loads_conv_weights_and_scratch_does_not(tiny_data, pretrained_weights, h):
    cfg = finetune_config(h.finetune_cfg())
    pre = backbone_state_dict(pretrained_weights)
    torch.manual_seed(0)
    inited, sha = build_model(cfg, str(pretrained_weights), num_classes=4)
    torch.manual_seed(0)
    scratch, tag = build_model(cfg, SCRATCH, num_classes=4)
    assert tag == SCRATCH and len(sha) == 64
    convs = [k for k in pre if k.endswith(".weight") and pre[k].dim() == 5]
    assert len(convs) >= 9
    for key in convs:
        assert torch.equal(inited.backbone.state_dict()[key], pre[key])
        assert not torch.equal(scratch.backbone.state_dict()[key], pre[key])
    assert inited.classifier[1].out_features == 4  # a new classifier either way
    assert class_names(load_manifest(tiny_data.manifest)) == tiny_data.classes


def test_init_with_another_backbone_is_a_config_error(pretrained_weights, h):
    cfg = finetune_config(h.finetune_cfg(model={"width": 8}))
    with pytest.raises(ConfigError, match=r"model\.width = 8"):
        build_model(cfg, str(pretrained_weights), num_classes=4)


def test_sigterm_exits_75_and_a_rerun_resumes(tiny_data, h, tmp_path):
    # many epochs and a state after every step: the run is still going when the signal comes
    cfg = h.finetune_cfg(optim={"epochs": 50}, run={"save_every": 1})
    args = argv(tiny_data, tmp_path, cfg, SCRATCH, h)
    proc = subprocess.Popen(
        h.sstl_command("finetune", *args),
        cwd=h.repo,
        env=h.subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    state_path = tmp_path / "state" / "resume.pt"
    try:
        deadline = time.monotonic() + 90
        while not state_path.is_file():  # written after the first step (save_every 1)
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "no resume state after 90 s"
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 75, err[-3000:]
    assert "stopped by SIGTERM" in err
    assert not (tmp_path / "weights.pt").exists()
    saved = ckpt.load_state(state_path)["progress"]
    assert saved["step"] >= 1 and saved["step"] == 4 * saved["epoch"] + saved["batch"]

    # the rerun (same config; max_steps is not part of the config hash) continues from there
    cfg["run"]["max_steps"] = saved["step"] + 2
    done = h.run_sstl("finetune", *argv(tiny_data, tmp_path, cfg, SCRATCH, h))
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = re.search(r"resuming at epoch (\d+) batch (\d+) \(step (\d+)\)", done.stderr)
    assert resumed, done.stderr[-3000:]
    assert [int(g) for g in resumed.groups()] == [saved["epoch"], saved["batch"], saved["step"]]
    _, _, meta = load_finetuned(tmp_path / "weights.pt")
    assert meta["steps"] == saved["step"] + 2
    steps = [r["step"] for r in records(tmp_path / "metrics.jsonl")]
    assert steps == sorted(set(steps))  # no duplicated epoch lines after the resume
