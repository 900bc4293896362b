"""Fixtures for the synthetic dataset tests: one small generated dataset, one rendered array set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sstl.config import SyntheticConfig
from sstl.data import synthetic


@pytest.fixture(scope="module")
def small_cfg() -> SyntheticConfig:
    # 5 test videos per class: two test groups (g01 c01-c04, g02 c01), train from g03 on.
    return SyntheticConfig(
        classes=3, train_per_class=2, test_per_class=5, frames=16, size=32, fps=25, seed=3
    )


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory, small_cfg) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("synthetic")
    summary = synthetic.generate(out, small_cfg, progress=False)
    return out, summary


@pytest.fixture(scope="module")
def rendered() -> tuple[np.ndarray, np.ndarray]:
    """8 classes x 20 videos of 48 frames at 64 px: ``[N, T, H, W, 3] uint8`` and labels ``[N]``."""
    videos, labels = [], []
    for c in range(8):
        for i in range(20):
            rng = np.random.default_rng([11, c, i])
            app = synthetic.sample_appearance(rng)
            videos.append(synthetic.render_video(synthetic.MOTIONS[c], app, 48, 64, rng))
            labels.append(c)
    return np.stack(videos), np.array(labels)
