"""The SSTL model (backbone + projection + playback-rate head), its weights file, the fine-tuner.

Weights file (``runs/pretrain/<exp>/weights.pt``), a plain dict loadable with
``torch.load(..., weights_only=True)``::

    {"model": SSTLModel state dict, "model_cfg": ModelConfig as dict,
     "config": the full run config, "meta": {...}}

State dict keys are always ``backbone.*``, ``projection.*``, ``rate_head.*`` (DDP / compile
wrappers are removed before saving), so :func:`backbone_state_dict` can hand the conv and batch-norm
weights to :class:`Finetuner` by name.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sstl.config import ModelConfig, load_section
from sstl.models.backbone import build_backbone
from sstl.models.heads import Classifier, ProjectionHead, RateHead
from sstl.train.checkpoint import save_atomic

log = logging.getLogger(__name__)

WEIGHTS_KEYS = ("model", "model_cfg", "config", "meta")


def _to_input_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x


class SSTLModel(nn.Module):
    """Backbone -> pooled feature -> projection (contrastive) and playback rate (auxiliary)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, self.feat_dim = build_backbone(cfg)
        self.projection = ProjectionHead(self.feat_dim, cfg.proj_hidden, cfg.proj_dim)
        self.rate_head = RateHead(self.feat_dim) if cfg.speed_head else None

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """``[B, 3, T, H, W]`` -> feat ``[B, D]``, proj ``[B, proj_dim]``, rate ``[B]`` or None."""
        feat = self.backbone(_to_input_format(x, self.cfg.channels_last))
        rate = self.rate_head(feat) if self.rate_head is not None else None
        return {"feat": feat, "proj": self.projection(feat), "rate": rate}


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside DistributedDataParallel and/or torch.compile wrappers."""
    while True:
        inner = getattr(model, "module", None)
        inner = inner if isinstance(inner, nn.Module) else getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def save_weights(
    path: str | Path, model: nn.Module, cfg_dict: dict[str, Any], meta: dict[str, Any]
) -> None:
    """Write the final weights file atomically (``save_atomic``: tmp + fsync + ``os.replace``)."""
    model = unwrap(model)
    if not isinstance(model, SSTLModel):
        raise TypeError(f"save_weights expects an SSTLModel, got {type(model).__name__}")
    payload = {
        "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "model_cfg": dataclasses.asdict(model.cfg),
        "config": cfg_dict,
        "meta": meta,
    }
    save_atomic(payload, path)


def _read_weights(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist: run `sstl pretrain` first")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in WEIGHTS_KEYS if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(
            f"{path} is not an SSTL weights file: keys {missing} are missing "
            f"(expected {list(WEIGHTS_KEYS)}, as written by sstl.models.sstl.save_weights)"
        )
    return payload


def load_weights(path: str | Path) -> tuple[SSTLModel, dict[str, Any], dict[str, Any]]:
    """Rebuild the model from a weights file: ``(SSTLModel on CPU, full config dict, meta)``."""
    payload = _read_weights(path)
    model = SSTLModel(load_section(ModelConfig, payload["model_cfg"], "model"))
    model.load_state_dict(payload["model"])  # strict: the file and its own config must agree
    return model, payload["config"], payload["meta"]


def backbone_state_dict(weights_path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone's conv and batch-norm tensors from a weights file, ``backbone.`` stripped."""
    state = _read_weights(weights_path)["model"]
    prefix = "backbone."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


class Finetuner(nn.Module):
    """Backbone + dropout/linear classifier: ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]``."""

    def __init__(self, cfg: ModelConfig, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.cfg = cfg
        self.backbone, self.feat_dim = build_backbone(cfg)
        self.classifier = Classifier(self.feat_dim, num_classes, dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.backbone(_to_input_format(x, self.cfg.channels_last)))

    def load_backbone(self, state: dict[str, torch.Tensor]) -> tuple[list[str], list[str]]:
        """Load pretrained backbone tensors by name; returns ``(missing, unexpected)`` keys.

        Keys may carry a ``backbone.`` prefix. Fails when a shared key has another shape (the
        pretraining used another ``model.arch``/``model.width``) or when no conv weight matched.
        """
        state = {k.removeprefix("backbone."): v for k, v in state.items()}
        own = self.backbone.state_dict()
        wrong = [
            f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
            for k, v in state.items()
            if k in own and v.shape != own[k].shape
        ]
        if wrong:
            raise ValueError(
                f"pretrained backbone does not fit this model ({self.cfg.arch}, width "
                f"{self.cfg.width}): shape mismatch at {wrong[:3]}; use the pretraining's model "
                "config for fine-tuning"
            )
        conv_keys = {
            f"{name}.weight"
            for name, m in self.backbone.named_modules()
            if isinstance(m, nn.Conv3d)
        }
        if not conv_keys & state.keys():
            raise ValueError(
                f"no conv weight of the backbone matched the {len(state)} pretrained tensors "
                f"(first keys: {sorted(state)[:3]}); expected keys like {sorted(conv_keys)[:2]}"
            )
        result = self.backbone.load_state_dict(state, strict=False)
        missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
        if missing or unexpected:
            log.warning("backbone load: missing %s, unexpected %s", missing, unexpected)
        log.info(
            "backbone load: %d/%d conv weights matched",
            len(conv_keys & state.keys()),
            len(conv_keys),
        )
        return missing, unexpected
