"""A tiny real dataset and model settings for the evaluation and fine-tuning tests.

Built once per session with the pipeline's own functions (synthetic videos -> PyAV decode ->
h264 frame store -> manifest): 4 classes x (4 train + 2 test) videos of 24 frames at 32x32,
stored at short side 32, so a 28-pixel crop is a plain centre crop.
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
import torch

from sstl.config import ModelConfig, StoreConfig, SyntheticConfig
from sstl.data.extract import extract_shard, merge_manifest
from sstl.data.splits import load as load_split
from sstl.data.synthetic import generate
from sstl.models.sstl import SSTLModel, save_weights

REPO = Path(__file__).resolve().parents[2]
CLASSES, TRAIN_PER_CLASS, TEST_PER_CLASS = 4, 4, 2
CLIP_LEN, CROP = 8, 28
TINY_MODEL = {"arch": "r3d_tiny", "width": 4, "proj_hidden": 16, "proj_dim": 8}


@dataclass
class TinyData:
    manifest: Path
    store: Path
    classes: list[str]
    train_videos: int
    test_videos: int


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> TinyData:
    root = tmp_path_factory.mktemp("eval_tiny")
    cfg = SyntheticConfig(
        classes=CLASSES,
        train_per_class=TRAIN_PER_CLASS,
        test_per_class=TEST_PER_CLASS,
        frames=24,
        size=32,
    )
    generate(root / "source", cfg, progress=False)
    split = load_split("synthetic", root / "source" / "splits")
    entries = [(rel, y, split.classes[y], "train") for rel, y in split.train]
    entries += [(rel, y, split.classes[y], "test") for rel, y in split.test]
    shard = root / "shards" / "0-of-1.csv"
    store_cfg = StoreConfig(short_side=32, gop=8)
    extract_shard(
        entries,
        root / "source" / "videos",
        root / "store",
        store_cfg,
        (0, 1),
        shard,
        progress=False,
    )
    merge_manifest([shard], root / "manifest.csv")
    return TinyData(
        root / "manifest.csv",
        root / "store",
        list(split.classes),
        CLASSES * TRAIN_PER_CLASS,
        CLASSES * TEST_PER_CLASS,
    )


@pytest.fixture(scope="session")
def pretrained_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pretraining weights file (``save_weights`` format) of a seeded r3d_tiny SSTLModel."""
    path = tmp_path_factory.mktemp("pretrained") / "weights.pt"
    torch.manual_seed(123)
    model = SSTLModel(ModelConfig(**TINY_MODEL))
    save_weights(path, model, {"model": TINY_MODEL}, {"note": "test fixture"})
    return path


def finetune_cfg(**overrides: Any) -> dict[str, Any]:
    """A FinetuneConfig mapping small enough for a 2-core CPU (~0.1 s a step)."""
    cfg: dict[str, Any] = {
        "model": dict(TINY_MODEL),
        "spatial": {"crop_size": CROP, "scale": [0.5, 1.0], "blur_sigma": [0.1, 1.0]},
        "clip_len": CLIP_LEN,
        "optim": {"epochs": 2, "batch_size": 4, "lr": 0.02, "ref_batch": 4},
        "run": {"device": "cpu", "workers": 0, "log_every": 1, "deterministic": True},
        "dropout": 0.2,
    }
    for section, values in overrides.items():
        cfg[section] = {**cfg[section], **values} if isinstance(values, dict) else values
    return cfg


def subprocess_env() -> dict[str, str]:
    """A child's environment: one thread, no inherited launcher variables."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_"))
    }
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def sstl_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "sstl.cli", *args]


def run_sstl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``sstl <args>`` in a child process from the repository root."""
    return subprocess.run(
        sstl_command(*args),
        cwd=REPO,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def h() -> SimpleNamespace:
    """The module's helpers for tests (importlib import mode cannot import a conftest)."""
    return SimpleNamespace(
        finetune_cfg=finetune_cfg,
        run_sstl=run_sstl,
        sstl_command=sstl_command,
        subprocess_env=subprocess_env,
        json=json.dumps,
        repo=REPO,
        tiny_model=dict(TINY_MODEL),
        clip_len=CLIP_LEN,
        crop=CROP,
    )
