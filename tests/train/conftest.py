"""Helpers for the training tests: small configs and child-process runs of ``sstl pretrain`` /
``sstl finetune`` on the shared tiny store (``tiny_data`` in tests/conftest.py: pretraining reads
its 16 train videos, fine-tuning trains on them and validates on its 8 test videos)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


def tiny_cfg(**overrides: Any) -> dict[str, Any]:
    """A PretrainConfig mapping small enough for a 2-core CPU: ~0.1 s a step.

    ``overrides`` are ``section=dict`` merged into the defaults here.
    """
    cfg: dict[str, Any] = {
        "model": {"arch": "r3d_tiny", "width": 8, "proj_hidden": 32, "proj_dim": 16},
        "temporal": {"clip_len": 8, "buffer": 4, "n_drop": 2},
        "spatial": {"crop_size": 28, "scale": [0.5, 1.0], "blur_sigma": [0.1, 1.0]},
        "memory": {"negatives": 8},
        "loss": {},
        "optim": {"epochs": 4, "batch_size": 4, "lr": 0.05, "ref_batch": 4},
        "run": {
            "device": "cpu",
            "workers": 0,
            "save_every": 2,
            "log_every": 1,
            "deterministic": True,
        },
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg.get(section, {}), **values}
    return cfg


FINETUNE_MODEL = {"arch": "r3d_tiny", "width": 4, "proj_hidden": 16, "proj_dim": 8}  # TINY_MODEL


def finetune_cfg(**overrides: Any) -> dict[str, Any]:
    """A FinetuneConfig mapping small enough for a 2-core CPU (~0.1 s a step)."""
    cfg: dict[str, Any] = {
        "model": dict(FINETUNE_MODEL),
        "spatial": {"crop_size": 28, "scale": [0.5, 1.0], "blur_sigma": [0.1, 1.0]},
        "clip_len": 8,
        "optim": {"epochs": 2, "batch_size": 4, "lr": 0.02, "ref_batch": 4},
        "run": {"device": "cpu", "workers": 0, "log_every": 1, "deterministic": True},
        "dropout": 0.2,
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    return cfg


def finetune_argv(data: Any, out_dir: Path, cfg: dict[str, Any], init: str) -> list[str]:
    """``sstl finetune`` arguments writing everything under ``out_dir``."""
    return [
        "--cfg",
        json.dumps(cfg),
        "--manifest",
        str(data.manifest),
        "--store",
        str(data.store),
        "--init",
        str(init),
        "--out",
        str(out_dir / "weights.pt"),
        "--state-dir",
        str(out_dir / "state"),
        "--metrics",
        str(out_dir / "metrics.jsonl"),
    ]


def pretrain_argv(data: Any, out_dir: Path, cfg: dict[str, Any]) -> list[str]:
    """``sstl pretrain`` arguments writing everything under ``out_dir``."""
    return [
        "--cfg",
        json.dumps(cfg),
        "--manifest",
        str(data.manifest),
        "--store",
        str(data.store),
        "--out",
        str(out_dir / "weights.pt"),
        "--state-dir",
        str(out_dir / "state"),
        "--metrics",
        str(out_dir / "metrics.jsonl"),
    ]


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment of a child training process: one thread, no inherited launcher variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1", **extra)
    return env


def sstl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sstl.cli", *args]


def run_sstl(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """``sstl <args>`` in a child process from the repository root."""
    return subprocess.run(
        sstl_command(*args),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_pretrain(
    data: Any, out_dir: Path, cfg: dict[str, Any], timeout: float = 120
) -> subprocess.CompletedProcess:
    return run_sstl("pretrain", *pretrain_argv(data, out_dir, cfg), timeout=timeout)


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The helpers above for the test files (importlib mode cannot import a conftest)."""
    return SimpleNamespace(
        REPO=REPO,
        tiny_cfg=tiny_cfg,
        finetune_cfg=finetune_cfg,
        finetune_argv=finetune_argv,
        run_sstl=run_sstl,
        pretrain_argv=pretrain_argv,
        subprocess_env=subprocess_env,
        sstl_command=sstl_command,
        run_pretrain=run_pretrain,
        read_metrics=read_metrics,
    )
