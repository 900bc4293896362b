"""The SSTL encoder, its heads, and the fine-tuner's backbone loading."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from sstl.config import ModelConfig
from sstl.models.heads import Classifier, ProjectionHead, RateHead
from sstl.models.sstl import Finetuner, SSTLModel

TINY = ModelConfig(arch="r3d_tiny", width=4, proj_hidden=16, proj_dim=8)


def _clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 32, 32)  # (B, 3, T, H, W)


def test_heads_shapes_and_layers() -> None:
    proj = ProjectionHead(32, 16, 8)
    assert [type(m) for m in proj] == [nn.Linear, nn.ReLU, nn.Linear]
    assert proj(torch.randn(5, 32)).shape == (5, 8)
    assert RateHead(32, hidden=16)(torch.randn(5, 32)).shape == (5,)
    assert Classifier(32, 10, 0.5)(torch.randn(5, 32)).shape == (5, 10)


def test_forward_outputs() -> None:
    model = SSTLModel(TINY)
    out = model(_clip(3))
    assert out["feat"].shape == (3, 32)
    assert out["proj"].shape == (3, 8)
    assert out["rate"].shape == (3,)
    no_speed = SSTLModel(dataclasses.replace(TINY, speed_head=False))
    assert no_speed.rate_head is None and no_speed(_clip())["rate"] is None
    assert all(
        k.split(".")[0] in {"backbone", "projection", "rate_head"} for k in model.state_dict()
    )


def test_finetuner_r3d_18_matches_pretrained_names() -> None:
    cfg = ModelConfig(arch="r3d_18")
    state = SSTLModel(cfg).state_dict()  # "backbone."-prefixed keys are accepted too
    missing, unexpected = Finetuner(cfg, 101).load_backbone(state)
    assert missing == []
    assert all(k.startswith(("projection.", "rate_head.")) for k in unexpected)


def test_finetuner_rejects_mismatched_backbones() -> None:
    tuner = Finetuner(TINY, num_classes=5)
    wider = SSTLModel(dataclasses.replace(TINY, width=8)).backbone.state_dict()
    with pytest.raises(ValueError, match="shape mismatch"):
        tuner.load_backbone(wider)
    with pytest.raises(ValueError, match="no conv weight"):
        tuner.load_backbone({"encoder.conv.weight": torch.zeros(1)})
