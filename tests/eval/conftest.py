"""Helpers for the evaluation tests: model settings and child-process runs of the commands on
the shared tiny store (``tiny_data`` in tests/conftest.py; its frames are stored at short side 32,
so a 28-pixel crop is a plain centre crop)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[2]
CLIP_LEN, CROP = 8, 28
TINY_MODEL = {"arch": "r3d_tiny", "width": 4, "proj_hidden": 16, "proj_dim": 8}


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
        run_sstl=run_sstl,
        sstl_command=sstl_command,
        subprocess_env=subprocess_env,
        json=json.dumps,
        repo=REPO,
        tiny_model=dict(TINY_MODEL),
        clip_len=CLIP_LEN,
        crop=CROP,
    )
