"""``@torch.no_grad()`` feature extraction: K uniformly spaced clips per video through a model.

One function serves evaluation (``logits`` of a fine-tuned model, :mod:`sstl.eval.classify`) and
retrieval (``projection`` or pooled ``backbone`` feature of a pretrained model,
:mod:`sstl.eval.retrieve`). The top-k / accuracy computations are separate pure functions.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, Literal

import torch
from torch import nn
from tqdm import tqdm

from sstl.augment.spatial import center_crop_normalize

Layer = Literal["projection", "backbone", "logits"]
LAYERS = ("projection", "backbone", "logits")


def clip_outputs(model: nn.Module, x: torch.Tensor, layer: Layer) -> torch.Tensor:
    """``[N, 3, T, S, S]`` float -> ``[N, D]``: the requested layer of ``model``.

    ``projection``: the ``proj`` output of an :class:`~sstl.models.sstl.SSTLModel` (the "last
    fully-connected layer"); ``backbone``: the pooled feature of ``model.backbone`` (SSTLModel or
    Finetuner); ``logits``: a classifier whose forward returns ``[N, C]`` (Finetuner).
    """
    if layer not in LAYERS:
        raise ValueError(f"layer = {layer!r} is not allowed: one of {', '.join(LAYERS)}")
    if layer == "backbone":
        backbone = getattr(model, "backbone", None)
        if not isinstance(backbone, nn.Module):
            raise TypeError(f"layer 'backbone' needs a model with .backbone; got {type(model)}")
        return backbone(x)
    out = model(x)
    if layer == "logits":
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"layer 'logits' needs a classifier returning a tensor; {type(model).__name__} "
                "returned a dict: use layer 'projection' or 'backbone' for a pretrained model"
            )
        return out
    if not isinstance(out, dict) or "proj" not in out:
        raise TypeError(
            f"layer 'projection' needs a model returning a dict with 'proj' (SSTLModel); "
            f"{type(model).__name__} returned {type(out).__name__}"
        )
    return out["proj"]


@torch.no_grad()
def extract_features(
    model: nn.Module,
    loader: Iterable[dict[str, Any]],
    layer: Layer,
    device: torch.device | str,
    crop_size: int,
    amp: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run every clip of every video through ``model`` and collect ``layer``'s output.

    ``loader`` yields uniform-mode batches (``ClipDataset(mode="uniform")`` + ``collate``):
    ``frames [B, K, T, H, W, 3] uint8`` (zero-padded to the batch's largest frame; each video's
    real ``sizes [B, 2]``), ``label [B]``, ``index [B]``. Each clip is centre
    cropped to ``crop_size`` and normalised on ``device``, and the ``B * K`` clips of a batch go
    through the model in one forward (eval mode; the previous mode is restored after).
    ``amp``: bf16 autocast on CUDA (ignored elsewhere).

    Returns ``feats [N, K, D]`` float32, ``labels [N]`` int64, ``video_index [N]`` int64, on CPU,
    in loader order.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    feats, labels, index = [], [], []
    total = len(loader) if hasattr(loader, "__len__") else None
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=amp and device.type == "cuda"
    )
    try:
        for batch in tqdm(
            loader, total=total, desc=f"features ({layer})", file=sys.stderr, dynamic_ncols=True
        ):
            frames = batch["frames"]
            if frames.dim() != 6 or frames.dtype != torch.uint8:
                raise ValueError(
                    f"frames must be [B, K, T, H, W, 3] uint8 (uniform-mode clips), got "
                    f"{tuple(frames.shape)} {frames.dtype}"
                )
            b, k = frames.shape[:2]
            x = frames.to(device, non_blocking=True)
            x = center_crop_normalize(x, crop_size, sizes=batch.get("sizes"))  # padded batches
            with autocast:
                out = clip_outputs(model, x.flatten(0, 1), layer)  # (B*K, D)
            feats.append(out.float().reshape(b, k, -1).cpu())
            labels.append(torch.as_tensor(batch["label"]).long())
            index.append(torch.as_tensor(batch["index"]).long())
    finally:
        model.train(was_training)
    if not feats:
        raise ValueError("extract_features: the loader yielded no batches (no videos?)")
    return torch.cat(feats), torch.cat(labels), torch.cat(index)
