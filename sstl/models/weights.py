"""The two weights files and every way of reading them: one owner for both formats.

Both are plain dicts that ``torch.load(..., weights_only=True)`` reads (no pickled objects):

- pretrained (``runs/pretrain/<exp>/weights.pt``, written by ``sstl pretrain``)::

    {"model": SSTLModel state dict, "model_cfg": ModelConfig as dict,
     "config": the full run config, "meta": {...}}

- fine-tuned (``runs/finetune/<exp>/<ds>/weights.pt``, written by ``sstl finetune``)::

    {"model": Finetuner state dict, "num_classes", "classes", "model_cfg", "dropout",
     "config", "meta"}

``scratch`` in place of a pretrained file means a seeded random initialisation.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from sstl.config import SCRATCH, ConfigError, ModelConfig, load_section
from sstl.files import save_atomic, sha256_file
from sstl.models.sstl import Finetuner, SSTLModel, unwrap

log = logging.getLogger(__name__)

PRETRAINED_KEYS = ("model", "model_cfg", "config", "meta")
FINETUNED_KEYS = ("model", "num_classes", "classes", "model_cfg", "dropout", "meta")
BACKBONE_KEYS = ("arch", "width", "stem_pool")  # model settings that shape the backbone


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in unwrap(model).state_dict().items()}


def _read(path: str | Path, keys: tuple[str, ...], what: str, writer: str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist: run `{writer}` first")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    missing = [k for k in keys if not isinstance(payload, dict) or k not in payload]
    if missing:
        raise ValueError(
            f"{path} is not {what} file: keys {missing} are missing (written by `{writer}`)"
        )
    return payload


def save_pretrained(
    path: str | Path, model: nn.Module, cfg_dict: dict[str, Any], meta: dict[str, Any]
) -> None:
    """Write the pretrained weights file atomically (the encoder, less any DDP wrapper)."""
    model = unwrap(model)
    if not isinstance(model, SSTLModel):
        raise TypeError(f"save_pretrained expects an SSTLModel, got {type(model).__name__}")
    payload = {"model": _cpu_state(model), "model_cfg": dataclasses.asdict(model.cfg)}
    save_atomic({**payload, "config": cfg_dict, "meta": meta}, path)


def read_pretrained(path: str | Path) -> tuple[SSTLModel, dict[str, Any], dict[str, Any]]:
    """Rebuild the encoder from a pretrained file: ``(SSTLModel on CPU, run config, meta)``."""
    payload = _read(path, PRETRAINED_KEYS, "a pretrained weights", "sstl pretrain")
    model = SSTLModel(load_section(ModelConfig, payload["model_cfg"], "model"))
    model.load_state_dict(payload["model"])  # strict: the file and its own config must agree
    return model, payload["config"], payload["meta"]


def load_pretrained(path: str | Path, heads: bool = False) -> nn.Module:
    """A pretrained SSTL model for use outside the pipeline, in eval mode on the CPU.

    ``heads=False``: the backbone, ``[B, 3, T, H, W]`` float -> pooled feature ``[B, D]``;
    ``heads=True``: the whole encoder, returning ``{"feat", "proj", "rate"}``.
    """
    model = read_pretrained(path)[0]
    return (model if heads else model.backbone).eval()


def backbone_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The backbone's conv and batch-norm tensors of a pretrained file, ``backbone.`` stripped."""
    state = _read(path, PRETRAINED_KEYS, "a pretrained weights", "sstl pretrain")["model"]
    prefix = "backbone."
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def require_init(weights: str, option: str = "--weights") -> None:
    """A ConfigError unless ``weights`` is an existing file or ``scratch``."""
    if weights != SCRATCH and not Path(weights).is_file():
        raise ConfigError(f"{option} {weights} is neither a pretraining weights file nor 'scratch'")


def build_encoder(weights: str, model_cfg: ModelConfig, seed: int) -> tuple[SSTLModel, dict]:
    """The pretrained encoder of ``weights``, or for ``scratch`` a random one seeded with ``seed``.

    Returns the model (CPU) and what identifies it: ``{"path", "sha256"}`` (+ ``seed``).
    """
    if weights == SCRATCH:
        torch.manual_seed(seed)
        return SSTLModel(model_cfg), {"path": SCRATCH, "sha256": None, "seed": seed}
    model = read_pretrained(weights)[0]
    return model, {"path": str(weights), "sha256": sha256_file(weights)}


def build_finetuner(
    model_cfg: ModelConfig, init: str, num_classes: int, dropout: float
) -> tuple[Finetuner, str]:
    """A Finetuner with the pretrained backbone of ``init`` (or random for ``scratch``) and a new
    classifier; returns it and the init's sha256 (``scratch`` for none). The pretraining's
    backbone settings must equal ``model_cfg``'s."""
    model = Finetuner(model_cfg, num_classes, dropout)
    if init == SCRATCH:
        log.info("init: scratch (random backbone)")
        return model, SCRATCH
    pretrained = read_pretrained(init)[0]
    for key in BACKBONE_KEYS:
        mine, theirs = getattr(model_cfg, key), getattr(pretrained.cfg, key)
        if mine != theirs:
            raise ConfigError(
                f"model.{key} = {mine!r} is not allowed: the pretraining weights {init} were "
                f"trained with model.{key} = {theirs!r}; fine-tune with the same backbone"
            )
    model.load_backbone(backbone_state_dict(init))
    log.info("init: backbone from %s", init)
    return model, sha256_file(init)


def save_supervised(path: str | Path, finetuned: str | Path, seed: int) -> None:
    """A pretrained weights file from a model trained with labels (``sstl supervise``): its
    backbone, and heads at a random init seeded with ``seed`` (no loss ever trained them), so
    every downstream stage reads it as it reads an SSTL pretraining."""
    trained, classes, meta = load_finetuned(finetuned)
    torch.manual_seed(seed)
    model = SSTLModel(trained.cfg)
    model.backbone.load_state_dict(trained.backbone.state_dict())
    meta = {**meta, "supervised": {"classes": classes, "finetuned_sha256": sha256_file(finetuned)}}
    save_pretrained(path, model, {"model": dataclasses.asdict(trained.cfg)}, meta)


def save_finetuned(
    path: str | Path, model: nn.Module, classes: list[str], cfg_dict: dict[str, Any], meta: dict
) -> None:
    """Write the fine-tuned weights file atomically (the classifier's width = ``len(classes)``)."""
    model = unwrap(model)
    if not isinstance(model, Finetuner):
        raise TypeError(f"save_finetuned expects a Finetuner, got {type(model).__name__}")
    payload = {"model": _cpu_state(model), "num_classes": len(classes), "classes": list(classes)}
    payload |= {"model_cfg": dataclasses.asdict(model.cfg), "dropout": model.dropout}
    save_atomic({**payload, "config": cfg_dict, "meta": meta}, path)


def load_finetuned(path: str | Path) -> tuple[Finetuner, list[str], dict[str, Any]]:
    """Rebuild a fine-tuned model: ``(Finetuner on CPU, class names, meta)``."""
    payload = _read(path, FINETUNED_KEYS, "a fine-tuned weights", "sstl finetune")
    model_cfg = load_section(ModelConfig, payload["model_cfg"], "model")
    model = Finetuner(model_cfg, payload["num_classes"], payload["dropout"])
    model.load_state_dict(payload["model"])
    return model, list(payload["classes"]), payload["meta"]
