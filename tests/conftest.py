"""Fixtures every test folder shares: where the real sample data lives."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def shared_path() -> Path:
    """The read-only sample data (real videos, split files, archives): $SSTL_SHARED or ../shared."""
    return Path(os.environ.get("SSTL_SHARED", REPO.parent / "shared")).resolve()


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    path = shared_path()
    if not (path / "videos").is_dir():
        pytest.fail(f"sample data not found at {path}: set SSTL_SHARED to the shared/ folder")
    return path


@pytest.fixture(scope="session")
def repo_dir() -> Path:
    return REPO
