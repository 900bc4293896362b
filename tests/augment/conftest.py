"""Fixtures of the augmentation tests: a real clip decoded with PyAV at the store's size."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
import torch


@pytest.fixture(scope="session")
def real_clip(shared_dir: Path) -> torch.Tensor:
    """16 frames of a real UCF101 video at short side 128: ``[16, 128, 171, 3]`` uint8."""
    path = shared_dir / "videos" / "ucf101" / "v_Punch_g03_c01.avi"
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24", width=171, height=128))
            if len(frames) == 16:
                break
    assert len(frames) == 16, f"{path} decoded to {len(frames)} frames"
    return torch.from_numpy(np.stack(frames))
