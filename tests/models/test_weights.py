"""The two weights files: round trips, refusals, and the loaders every stage uses."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from sstl.config import ConfigError, ModelConfig
from sstl.models.sstl import Finetuner, SSTLModel
from sstl.models.weights import (
    SCRATCH,
    backbone_state_dict,
    build_encoder,
    build_finetuner,
    load_finetuned,
    load_pretrained,
    read_pretrained,
    require_init,
    save_finetuned,
    save_pretrained,
)

TINY = ModelConfig(arch="r3d_tiny", width=4, proj_hidden=16, proj_dim=8)


def _clip(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 3, 8, 32, 32)  # (B, 3, T, H, W)


@pytest.fixture
def pretrained(tmp_path) -> tuple[SSTLModel, object]:
    model = SSTLModel(TINY).eval()
    path = tmp_path / "w.pt"
    save_pretrained(path, model, {"model": dataclasses.asdict(TINY)}, {"note": "test"})
    return model, path


def test_pretrained_round_trip(tmp_path) -> None:
    model = SSTLModel(dataclasses.replace(TINY, stem_pool="spacetime")).eval()
    path = tmp_path / "run" / "weights.pt"
    config = {"model": dataclasses.asdict(model.cfg), "loss": {"temperature": 0.1}}
    save_pretrained(path, nn.DataParallel(model), config, {"epoch": 3, "git": "abc"})
    assert [p.name for p in path.parent.iterdir()] == ["weights.pt"]  # no temp file left behind
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"model", "model_cfg", "config", "meta"}
    assert all(k.startswith(("backbone.", "projection.", "rate_head.")) for k in raw["model"])
    loaded, cfg_dict, meta = read_pretrained(path)
    assert loaded.cfg == model.cfg
    assert cfg_dict == config and meta == {"epoch": 3, "git": "abc"}
    x = _clip()
    with torch.no_grad():
        a, b = model(x), loaded.eval()(x)
    assert torch.equal(a["proj"], b["proj"]) and torch.equal(a["rate"], b["rate"])


def test_files_of_the_wrong_kind_are_refused(tmp_path, pretrained) -> None:
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a pretrained weights file"):
        read_pretrained(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="sstl pretrain"):
        read_pretrained(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="not a fine-tuned weights file"):
        load_finetuned(pretrained[1])  # a pretrained file where a fine-tuned one is expected
    with pytest.raises(TypeError, match="SSTLModel"):
        save_pretrained(tmp_path / "x.pt", Finetuner(TINY, 3), {}, {})


def test_load_pretrained_gives_the_backbone_or_the_whole_encoder(pretrained) -> None:
    model, path = pretrained
    x = _clip()
    backbone = load_pretrained(path)
    assert not backbone.training and not isinstance(backbone, SSTLModel)
    with torch.no_grad():
        assert torch.equal(backbone(x), model.backbone(x))  # [B, 32] pooled feature
        whole = load_pretrained(path, heads=True)
        assert torch.equal(whole(x)["proj"], model(x)["proj"])


def test_build_encoder_pretrained_or_seeded_scratch(pretrained) -> None:
    model, path = pretrained
    loaded, info = build_encoder(str(path), TINY, seed=0)
    assert info["path"] == str(path) and len(info["sha256"]) == 64
    assert torch.equal(loaded.state_dict()["projection.0.weight"], model.projection[0].weight)
    a, info = build_encoder(SCRATCH, TINY, seed=3)
    b, _ = build_encoder(SCRATCH, TINY, seed=3)
    c, _ = build_encoder(SCRATCH, TINY, seed=4)
    assert info == {"path": SCRATCH, "sha256": None, "seed": 3}
    key = "projection.0.weight"
    assert torch.equal(a.state_dict()[key], b.state_dict()[key])
    assert not torch.equal(a.state_dict()[key], c.state_dict()[key])


def test_build_finetuner_loads_every_backbone_weight(pretrained) -> None:
    model, path = pretrained
    state = backbone_state_dict(path)
    assert state and not any(k.startswith("backbone.") for k in state)
    tuner, sha = build_finetuner(TINY, str(path), num_classes=5, dropout=0.5)
    assert len(sha) == 64
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(tuner.backbone.state_dict()[key], value), key
    assert tuner(_clip(3)).shape == (3, 5)
    scratch, tag = build_finetuner(TINY, SCRATCH, num_classes=5, dropout=0.5)
    assert tag == SCRATCH
    assert not torch.equal(scratch.backbone.state_dict()["stem.0.weight"], state["stem.0.weight"])
    with pytest.raises(ConfigError, match=r"model\.width = 8"):
        build_finetuner(dataclasses.replace(TINY, width=8), str(path), 5, 0.5)


def test_finetuned_round_trip(tmp_path) -> None:
    tuner = Finetuner(TINY, num_classes=3, dropout=0.3).eval()
    path = tmp_path / "ft.pt"
    save_finetuned(path, tuner, ["a", "b", "c"], {"clip_len": 8}, {"epochs": 2})
    loaded, classes, meta = load_finetuned(path)
    assert classes == ["a", "b", "c"] and meta == {"epochs": 2} and loaded.dropout == 0.3
    x = _clip()
    with torch.no_grad():
        assert torch.equal(loaded.eval()(x), tuner(x))


def test_require_init(tmp_path, pretrained) -> None:
    require_init(SCRATCH)
    require_init(str(pretrained[1]))
    with pytest.raises(ConfigError, match=r"--init .*nope\.pt is neither"):
        require_init(str(tmp_path / "nope.pt"), "--init")
