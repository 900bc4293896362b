"""A trained model outside the pipeline: ``sstl.load_pretrained`` and the torch.hub entry points
(``hubconf.py``, loaded from this checkout with ``source="local"``: nothing is downloaded)."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sstl
from sstl.config import ConfigError, ModelConfig
from sstl.models.sstl import SSTLModel
from sstl.models.weights import save_pretrained

REPO = Path(__file__).resolve().parents[2]
TINY = ModelConfig(arch="r3d_tiny", width=4, proj_hidden=16, proj_dim=8)


@pytest.fixture
def weights(tmp_path) -> tuple[SSTLModel, Path]:
    torch.manual_seed(3)
    model = SSTLModel(TINY).eval()
    path = tmp_path / "my run" / "weights.pt"
    save_pretrained(path, model, {"model": dataclasses.asdict(TINY)}, {"note": "test"})
    return model, path


@pytest.fixture
def hub_dir(tmp_path, monkeypatch) -> Path:
    """torch.hub's cache, empty: a download would land here."""
    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(torch.hub, "_hub_dir", str(cache))
    return cache


def clips() -> torch.Tensor:
    return torch.randn(2, 3, 8, 32, 32)  # (B, 3, T, H, W)


def test_load_pretrained_from_the_package_top_level(weights):
    model, path = weights
    backbone = sstl.load_pretrained(path)
    assert not backbone.training
    with torch.no_grad():
        assert torch.equal(backbone(clips_ := clips()), model.backbone(clips_))
    encoder = sstl.load_pretrained(path, heads=True)
    with torch.no_grad():
        assert torch.equal(encoder(clips_)["proj"], model(clips_)["proj"])
    assert "load_pretrained" in dir(sstl)
    with pytest.raises(AttributeError, match="no attribute 'load_pretrain'"):
        sstl.load_pretrain  # noqa: B018


def test_import_sstl_does_not_import_torch():
    code = (
        "import sys, sstl, sstl.cli\n"
        "assert 'torch' not in sys.modules, 'import sstl imported torch'\n"
        "f = sstl.load_pretrained\n"
        "assert 'torch' in sys.modules and f.__module__ == 'sstl.models.weights'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_hubconf_entry_points_and_dependencies():
    """What ``torch.hub.list`` shows for a GitHub copy (it reads only GitHub): the public
    callables of hubconf.py, and the modules its ``dependencies`` name are importable."""
    spec = importlib.util.spec_from_file_location("hubconf", REPO / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    names = {n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")}
    assert {"sstl_r3d18", "sstl_r3d_tiny", "sstl_backbone"} <= names
    for module in hubconf.dependencies:
        assert importlib.util.find_spec(module) is not None, module


def test_hub_loads_a_weights_file_without_downloading(weights, hub_dir):
    model, path = weights
    encoder = torch.hub.load(str(REPO), "sstl_r3d_tiny", weights=str(path), source="local")
    backbone = torch.hub.load(str(REPO), "sstl_backbone", weights=path, source="local")
    x = clips()
    with torch.no_grad():
        out, ref = encoder(x), model(x)
        assert torch.equal(out["proj"], ref["proj"]) and torch.equal(out["feat"], ref["feat"])
        assert torch.equal(backbone(x), ref["feat"])
    assert not encoder.training and not backbone.training
    assert list(hub_dir.iterdir()) == []  # nothing fetched into the hub cache


def test_hub_builds_random_models_with_settings(hub_dir):
    tiny = torch.hub.load(str(REPO), "sstl_r3d_tiny", source="local", width=4, proj_dim=8)
    with torch.no_grad():
        out = tiny(clips())
    assert out["feat"].shape == (2, 32) and out["proj"].shape == (2, 8)
    r3d = torch.hub.load(str(REPO), "sstl_r3d18", source="local", speed_head=False)
    assert r3d.cfg.arch == "r3d_18" and r3d.rate_head is None
    assert sum(p.numel() for p in r3d.backbone.parameters()) > 30_000_000  # R3D-18: 33 M


def test_hub_refusals_name_the_problem(weights, hub_dir):
    _, path = weights
    with pytest.raises(ValueError, match=r"holds an r3d_tiny model.*'sstl_r3d_tiny'"):
        torch.hub.load(str(REPO), "sstl_r3d18", weights=path, source="local")
    with pytest.raises(ValueError, match="never download"):
        torch.hub.load(str(REPO), "sstl_backbone", weights="https://x.invalid/w.pt", source="local")
    with pytest.raises(TypeError, match="brings its own model settings"):
        torch.hub.load(str(REPO), "sstl_r3d_tiny", weights=path, width=8, source="local")
    with pytest.raises(FileNotFoundError, match="run `sstl pretrain` first"):
        torch.hub.load(str(REPO), "sstl_backbone", weights=path.parent / "nope.pt", source="local")
    with pytest.raises(ConfigError, match=r"unknown key model\.widht"):
        torch.hub.load(str(REPO), "sstl_r3d_tiny", widht=4, source="local")
