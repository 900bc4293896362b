"""Atomic resume-state files, RNG snapshots, config hashes and the resumable metrics log."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from sstl.files import config_hash, save_atomic
from sstl.train.checkpoint import MetricsLog, capture_rng, load_state, move_aside, restore_rng


def test_save_atomic_roundtrip_leaves_no_tmp(tmp_path):
    path = tmp_path / "deep" / "resume.pt"
    state = {"w": torch.arange(6.0).view(2, 3), "step": 7, "nested": {"a": [1, 2]}}
    save_atomic(state, path)
    loaded = load_state(path)
    assert torch.equal(loaded["w"], state["w"])
    assert loaded["step"] == 7 and loaded["nested"] == {"a": [1, 2]}
    assert [p.name for p in path.parent.iterdir()] == ["resume.pt"]


def test_failed_save_keeps_the_previous_state(tmp_path):
    path = tmp_path / "resume.pt"
    save_atomic({"step": 1}, path)
    with pytest.raises(Exception):  # noqa: B017 (pickle raises different types per version)
        save_atomic({"step": 2, "bad": lambda: None}, path)  # lambdas cannot be pickled
    assert load_state(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["resume.pt"]


def test_load_state_missing_is_none(tmp_path):
    assert load_state(tmp_path / "nope.pt") is None


def test_rng_capture_restore_replays_every_generator():
    state = capture_rng()
    first = (random.random(), np.random.rand(), torch.rand(3))
    restore_rng(state)
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert first[0] == again[0] and first[1] == again[1]
    assert torch.equal(first[2], again[2])


def test_rng_state_survives_a_file(tmp_path):
    save_atomic({"rng": capture_rng()}, tmp_path / "s.pt")
    expected = torch.rand(4)
    restore_rng(load_state(tmp_path / "s.pt")["rng"])
    assert torch.equal(torch.rand(4), expected)


def test_config_hash_ignores_key_order_and_sees_changes():
    a = {"loss": {"temperature": 0.1, "w_ctr": 1.0}, "optim": {"lr": 2.0}}
    b = {"optim": {"lr": 2.0}, "loss": {"w_ctr": 1.0, "temperature": 0.1}}
    assert config_hash(a) == config_hash(b)
    c = json.loads(json.dumps(a))
    c["loss"]["temperature"] = 0.2
    assert config_hash(c) != config_hash(a)
    assert len(config_hash(a)) == 16


def test_move_aside_names_the_old_hash(tmp_path):
    path = tmp_path / "resume.pt"
    save_atomic({"x": 1}, path)
    stale = move_aside(path, "abc123")
    assert stale.name == "resume.pt.stale-abc123" and stale.is_file()
    assert not path.exists()


def test_metrics_log_resume_drops_lines_past_the_state(tmp_path):
    path = tmp_path / "m.jsonl"
    with MetricsLog(path, None, 0, "t") as m:
        for step in range(1, 6):
            m.write({"step": step, "loss": 1.0 / step})
    with path.open("a") as fh:
        fh.write('{"step": 6, "lo')  # a line cut off by kill -9
    with MetricsLog(path, None, 3, "t") as m:  # the saved state was at step 3
        m.write({"step": 4, "loss": 0.0})
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_metrics_log_fresh_start_truncates_and_disabled_writes_nothing(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 9}\n')
    with MetricsLog(path, None, 0, "t") as m:
        m.write({"step": 1})
    assert path.read_text() == '{"step": 1}\n'
    other = tmp_path / "rank1.jsonl"
    with MetricsLog(other, None, 0, "t", enabled=False) as m:
        m.write({"step": 1})
    assert not other.exists()


def test_metrics_log_writes_tensorboard_scalars(tmp_path):
    with MetricsLog(tmp_path / "m.jsonl", tmp_path / "tb", 0, "pretrain") as m:
        m.write({"step": 1, "loss_total": 2.5, "lr": 0.1})
    events = list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0
