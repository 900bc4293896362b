"""The networks: the SSTL encoder (backbone + projection + playback-rate head) and the fine-tuner.

State dict keys are always ``backbone.*``, ``projection.*``, ``rate_head.*`` (DDP / compile
wrappers are removed before saving), so a pretrained backbone reaches :class:`Finetuner` by name.
Their weights files are :mod:`sstl.models.weights`; the method that trains the encoder is
:mod:`sstl.method`.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from sstl.config import ModelConfig
from sstl.models.backbone import build_backbone
from sstl.models.heads import Classifier, ProjectionHead, RateHead

log = logging.getLogger(__name__)


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


class Finetuner(nn.Module):
    """Backbone + dropout/linear classifier: ``[B, 3, T, H, W]`` -> logits ``[B, num_classes]``."""

    def __init__(self, cfg: ModelConfig, num_classes: int, dropout: float = 0.5) -> None:
        super().__init__()
        self.cfg, self.dropout = cfg, dropout
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
