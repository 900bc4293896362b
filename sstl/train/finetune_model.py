"""The fine-tuned model and its weights file: build it from the pretraining weights, save, load.

``sstl finetune`` writes the file (:func:`save_finetuned`); ``sstl evaluate`` reads it
(:func:`load_finetuned`), so the format has one owner here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from sstl.config import ConfigError, FinetuneConfig, ModelConfig, load_section, to_dict
from sstl.data.extract import sha256_file
from sstl.models.sstl import Finetuner, backbone_state_dict, load_weights
from sstl.train import checkpoint as ckpt

log = logging.getLogger(__name__)

SCRATCH = "scratch"
BACKBONE_KEYS = ("arch", "width", "stem_pool")  # model settings that shape the backbone


def build_model(cfg: FinetuneConfig, init: str, num_classes: int) -> tuple[Finetuner, str]:
    """Finetuner with the pretrained backbone (or random init); returns it and the init's sha256."""
    model = Finetuner(cfg.model, num_classes, cfg.dropout)
    if init == SCRATCH:
        log.info("init: scratch (random backbone)")
        return model, SCRATCH
    pretrained, _, _ = load_weights(init)
    for key in BACKBONE_KEYS:
        mine, theirs = getattr(cfg.model, key), getattr(pretrained.cfg, key)
        if mine != theirs:
            raise ConfigError(
                f"model.{key} = {mine!r} is not allowed: the pretraining weights {init} were "
                f"trained with model.{key} = {theirs!r}; fine-tune with the same backbone"
            )
    model.load_backbone(backbone_state_dict(init))
    log.info("init: backbone from %s", init)
    return model, sha256_file(init)


def save_finetuned(
    path: str | Path, model: Finetuner, classes: list[str], cfg: FinetuneConfig, meta: dict
) -> None:
    """The fine-tuned weights file (plain dict, ``torch.load(weights_only=True)`` reads it)."""
    ckpt.save_atomic(
        {
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "num_classes": len(classes),
            "classes": list(classes),
            "model_cfg": to_dict(model.cfg),
            "dropout": cfg.dropout,
            "config": to_dict(cfg),
            "meta": meta,
        },
        path,
    )


def load_finetuned(path: str | Path) -> tuple[Finetuner, list[str], dict[str, Any]]:
    """Rebuild a fine-tuned model: ``(Finetuner on CPU, class names, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"fine-tuned weights {path} do not exist: run `sstl finetune`")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    keys = ("model", "num_classes", "classes", "model_cfg", "dropout", "meta")
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(f"{path} is not a fine-tuned weights file (no {missing}): `sstl finetune`")
    model_cfg = load_section(ModelConfig, payload["model_cfg"], "model")
    model = Finetuner(model_cfg, payload["num_classes"], payload["dropout"])
    model.load_state_dict(payload["model"])
    return model, list(payload["classes"]), payload["meta"]
