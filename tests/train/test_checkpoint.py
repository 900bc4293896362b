"""Atomic resume-state files, RNG snapshots, config hashes and the resumable metrics log."""

from __future__ import annotations

import json
import os
import pickle
import random

import numpy as np
import pytest
import torch

from sstl.files import config_hash, save_atomic
from sstl.memory import TemporalMemoryBank
from sstl.train.checkpoint import (
    MetricsLog,
    StateError,
    capture_rng,
    load_state,
    move_aside,
    restore_rng,
)


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


# --- resume states are data, never code (issue 11) ------------------------------------------


class _Planted:
    """Unpickling this creates a file: what an attacker plants in ``state/``."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _plant_torch(path, marker):
    torch.save({"step": 5, "model": {"w": torch.ones(2)}, "x": _Planted(marker)}, path)


def _plant_pickle(path, marker):
    path.write_bytes(pickle.dumps({"step": 5, "x": _Planted(marker)}, protocol=2))


@pytest.mark.parametrize("plant", [_plant_torch, _plant_pickle], ids=["torch-zip", "raw-pickle"])
def test_planted_pickle_is_refused_and_runs_nothing(tmp_path, plant):
    marker = tmp_path / "PWNED"
    path = tmp_path / "state" / "resume.pt"
    path.parent.mkdir()
    plant(path, marker)
    with pytest.raises(StateError) as err:
        load_state(path)
    assert not marker.exists(), "unpickling the planted state ran code"
    msg = str(err.value)
    assert str(path) in msg and "nothing in it was run" in msg and "Delete it" in msg


@pytest.mark.parametrize("damage", ["truncated", "not-a-dict", "garbage"])
def test_unreadable_state_names_the_file(tmp_path, damage):
    path = tmp_path / "resume.pt"
    if damage == "truncated":
        save_atomic({"w": torch.zeros(1000)}, path)
        path.write_bytes(path.read_bytes()[:300])
    elif damage == "not-a-dict":
        save_atomic(torch.zeros(3), path)
    else:
        path.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StateError, match=r"resume\.pt"):
        load_state(path)


def _draw():
    return (
        random.random(),
        random.gauss(0, 1),
        np.random.rand(3).tolist(),
        float(np.random.standard_normal()),
        torch.rand(3),
        torch.randn(2),
    )


def test_rng_round_trip_through_a_file_restores_every_generator_exactly(tmp_path):
    # cached Gaussians pending on both python (gauss_next) and numpy (has_gauss)
    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    random.gauss(0, 1), np.random.standard_normal()
    assert random.getstate()[2] is not None and np.random.get_state()[3] == 1
    save_atomic({"rng": capture_rng()}, tmp_path / "s.pt")
    before = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    first = _draw()
    restore_rng(load_state(tmp_path / "s.pt")["rng"])
    after = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    assert after[0] == before[0]
    assert after[1][0] == before[1][0] and np.array_equal(after[1][1], before[1][1])
    assert after[1][2:] == before[1][2:]
    assert torch.equal(after[2], before[2])
    again = _draw()
    assert first[:4] == again[:4]
    assert torch.equal(first[4], again[4]) and torch.equal(first[5], again[5])


def test_a_full_resume_state_is_plain_data(tmp_path):
    """Model, optimizer, LambdaLR schedule, memory bank, RNG and progress load with no allowlist."""
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    model(torch.ones(1, 3)).sum().backward()
    opt.step(), sched.step()
    bank = TemporalMemoryBank(4, 2, 3, momentum=0.5, attenuation=0.6)
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "memory": bank.state_dict(),
        "rng": capture_rng(),
        "progress": {"epoch": 1, "step": 7, "sampler_position": 3},
        "config_hash": "0123456789abcdef",
    }
    save_atomic(state, tmp_path / "resume.pt")
    plain = torch.load(tmp_path / "resume.pt", weights_only=True)  # no safe_globals at all
    assert plain["progress"] == state["progress"]
    assert torch.equal(plain["memory"]["memory"], bank.state_dict()["memory"])


def test_states_written_with_numpy_rng_tuples_still_resume(tmp_path):
    np.random.seed(1), random.seed(1)
    legacy = {"python": random.getstate(), "numpy": np.random.get_state()}
    legacy["torch"] = torch.get_rng_state()
    torch.save({"rng": legacy}, tmp_path / "old.pt")
    expected = (random.random(), np.random.rand())
    restore_rng(load_state(tmp_path / "old.pt")["rng"])
    assert (random.random(), np.random.rand()) == expected
