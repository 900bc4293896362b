"""torch.hub entry points: SSTL models built here, weights loaded from a file you already have.

    import torch
    encoder = torch.hub.load("path/to/sstl", "sstl_r3d18", weights="weights.pt", source="local")
    backbone = torch.hub.load("path/to/sstl", "sstl_backbone", weights="weights.pt", source="local")

Nothing is downloaded: ``weights`` is a local weights file written by ``sstl pretrain``
(``runs/pretrain/<exp>/weights.pt``). Without ``weights`` the encoders are randomly initialised.
Every model comes back on the CPU in eval mode; inputs are ``[B, 3, T, H, W]`` float clips
normalised with the Kinetics mean and std (``sstl features`` does all of that for video files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

dependencies = ["torch", "torchvision"]  # checked by torch.hub before an entry point runs


def _weights_file(weights: str | Path) -> Path:
    text = str(weights)
    if "://" in text:
        raise ValueError(
            f"weights = {text!r}: give a local file; these entry points never download "
            "(fetch the file first, then pass its path)"
        )
    return Path(text)


def _encoder(arch: str, weights: str | Path | None, model: dict[str, Any]) -> Any:
    from sstl.config import ModelConfig, load_section
    from sstl.models.sstl import SSTLModel
    from sstl.models.weights import load_pretrained

    if weights is None:
        return SSTLModel(load_section(ModelConfig, {**model, "arch": arch}, "model")).eval()
    if model:
        raise TypeError(
            f"{sorted(model)}: a weights file brings its own model settings; pass either "
            "weights or model settings, not both"
        )
    encoder = load_pretrained(_weights_file(weights), heads=True)
    if encoder.cfg.arch != arch:
        other = {"r3d_18": "sstl_r3d18", "r3d_tiny": "sstl_r3d_tiny"}[encoder.cfg.arch]
        raise ValueError(
            f"{weights} holds an {encoder.cfg.arch} model, not {arch}: load it with '{other}' "
            "(or 'sstl_backbone')"
        )
    return encoder


def sstl_r3d18(weights: str | Path | None = None, **model: Any) -> Any:
    """The SSTL encoder with an R3D-18 backbone (the paper's model).

    Returns an ``SSTLModel``: ``[B, 3, T, H, W]`` -> ``{"feat": [B, 512], "proj": [B, proj_dim],
    "rate": [B] or None}``. ``weights``: a pretrained weights file (its settings are used);
    without it, a random model; ``**model``: settings of the config's ``pretrain.model``
    section for the random model (``proj_dim=128``, ``stem_pool="spacetime"``, ...).
    """
    return _encoder("r3d_18", weights, model)


def sstl_r3d_tiny(weights: str | Path | None = None, **model: Any) -> Any:
    """The SSTL encoder with the narrow R3D of the CPU demo (feature dim ``8 * width``); as
    :func:`sstl_r3d18` otherwise."""
    return _encoder("r3d_tiny", weights, model)


def sstl_backbone(weights: str | Path) -> Any:
    """The backbone of a pretrained weights file, any architecture: ``[B, 3, T, H, W]`` ->
    pooled feature ``[B, D]`` (the feature to fine-tune or to retrieve with)."""
    from sstl.models.weights import load_pretrained

    return load_pretrained(_weights_file(weights))
