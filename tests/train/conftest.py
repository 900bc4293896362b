"""A tiny real dataset for the training tests: synthetic videos -> frame store -> manifest.

Built once per session in a temp dir with the pipeline's own functions (PyAV decoding, h264 store):
4 classes x 4 training videos of 24 frames at 32x32, stored at short side 32.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from sstl.config import StoreConfig, SyntheticConfig
from sstl.data.extract import extract_shard, merge_manifest, split_entries
from sstl.data.synthetic import generate

REPO = Path(__file__).resolve().parents[2]


@dataclass
class TinyData:
    manifest: Path
    store: Path
    train_videos: int


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    root = tmp_path_factory.mktemp("tiny")
    cfg = SyntheticConfig(classes=4, train_per_class=4, test_per_class=1, frames=24, size=32)
    generate(root / "source", cfg, progress=False)
    entries = split_entries("synthetic", root / "source" / "splits")
    shard_csv = root / "shards" / "0-of-1.csv"
    extract_shard(
        entries,
        root / "source" / "videos",
        root / "store",
        StoreConfig(short_side=32, gop=8),
        (0, 1),
        shard_csv,
        progress=False,
    )
    merge_manifest([shard_csv], root / "manifest.csv")
    return TinyData(root / "manifest.csv", root / "store", 4 * cfg.train_per_class)


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


def pretrain_argv(data: TinyData, out_dir: Path, cfg: dict[str, Any]) -> list[str]:
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


def run_pretrain(
    data: TinyData, out_dir: Path, cfg: dict[str, Any], timeout: float = 120
) -> subprocess.CompletedProcess:
    return subprocess.run(
        sstl_command("pretrain", *pretrain_argv(data, out_dir, cfg)),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def helpers() -> SimpleNamespace:
    """The helpers above for the test files (importlib mode cannot import a conftest)."""
    return SimpleNamespace(
        REPO=REPO,
        tiny_cfg=tiny_cfg,
        pretrain_argv=pretrain_argv,
        subprocess_env=subprocess_env,
        sstl_command=sstl_command,
        run_pretrain=run_pretrain,
        read_metrics=read_metrics,
    )
