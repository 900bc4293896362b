"""Backbones: output dims, stem pooling, channels-last, torchvision-compatible names."""

from __future__ import annotations

import pytest
import torch
from torchvision.models.video import r3d_18

from sstl.config import ConfigError, ModelConfig, load_section
from sstl.models.backbone import build_backbone


def _stem_out(model: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(stem output, pooled feature) of one forward."""
    seen = {}
    handle = model.stem.register_forward_hook(lambda m, i, o: seen.setdefault("stem", o))
    with torch.no_grad():
        feat = model(x)
    handle.remove()
    return seen["stem"], feat


def test_r3d_18_feature_and_torchvision_names() -> None:
    model, dim = build_backbone(ModelConfig(arch="r3d_18"))
    assert dim == 512
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 16, 112, 112))
    assert out.shape == (1, 512)
    # the state dict is torchvision's r3d_18 minus the classifier: pretrained weights load by name
    reference = {k for k in r3d_18(weights=None).state_dict() if not k.startswith("fc.")}
    assert set(model.state_dict()) == reference


def test_r3d_tiny_dims_follow_width() -> None:
    for width in (4, 16):
        model, dim = build_backbone(ModelConfig(arch="r3d_tiny", width=width))
        assert dim == 8 * width
        out = model(torch.randn(2, 3, 16, 56, 56))
        assert out.shape == (2, 8 * width)
        out.sum().backward()  # trainable end to end
        assert model.stem[0].weight.grad is not None


def test_stem_pool_halves_the_stem_output_not_the_feature() -> None:
    x = torch.randn(1, 3, 8, 64, 64)
    plain, dim = build_backbone(ModelConfig(arch="r3d_tiny", width=8))
    stem_plain, feat_plain = _stem_out(plain, x)
    assert stem_plain.shape[-3:] == (8, 32, 32)
    # space halves H and W (4x fewer activations); spacetime halves T too (8x, the paper's batch)
    for mode, shape in (("space", (8, 16, 16)), ("spacetime", (4, 16, 16))):
        pooled, pooled_dim = build_backbone(ModelConfig(arch="r3d_tiny", width=8, stem_pool=mode))
        stem_pooled, feat_pooled = _stem_out(pooled, x)
        assert stem_pooled.shape[-3:] == shape
        assert stem_plain.numel() == stem_pooled.numel() * (8 if mode == "spacetime" else 4)
        assert feat_plain.shape == feat_pooled.shape == (1, 64) and dim == pooled_dim
        # the max-pool has no parameters: checkpoints are interchangeable
        assert set(plain.state_dict()) == set(pooled.state_dict())
    big, _ = build_backbone(ModelConfig(arch="r3d_18", stem_pool="spacetime"))
    assert isinstance(big.stem[-1], torch.nn.MaxPool3d) and big.stem[-1].stride == (2, 2, 2)


def test_a_boolean_stem_pool_names_the_new_values() -> None:
    for old, new in ((True, "'space'"), (False, "'none'")):
        with pytest.raises(ConfigError, match=f"model.stem_pool = {old}.*{new} for the old"):
            load_section(ModelConfig, {"stem_pool": old}, "model")


def test_channels_last_gives_the_same_features() -> None:
    torch.manual_seed(0)
    model, _ = build_backbone(ModelConfig(arch="r3d_tiny", width=8, channels_last=True))
    plain, _ = build_backbone(ModelConfig(arch="r3d_tiny", width=8))
    plain.load_state_dict(model.state_dict())
    assert model.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    assert not plain.stem[0].weight.is_contiguous(memory_format=torch.channels_last_3d)
    model.eval()
    plain.eval()
    x = torch.randn(2, 3, 8, 32, 32)
    with torch.no_grad():
        got = model(x.contiguous(memory_format=torch.channels_last_3d))
        assert torch.allclose(got, plain(x), atol=1e-4)
