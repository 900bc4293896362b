"""Heads on the pooled backbone feature: projection MLP, playback-rate regressor, classifier."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Sequential):
    """Non-linear projection ``[B, in_dim] -> [B, out_dim]``: Linear -> ReLU -> Linear.

    SimCLR-style without batch norm: the paper names only "a non-linear projection head" and its
    output dimension (Fig. 4), so the plainest reading is used (METHOD §4: 512 -> 512 -> out_dim).
    """

    def __init__(self, in_dim: int, hidden: int, out_dim: int) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )


class RateHead(nn.Module):
    """Playback-rate regressor ``[B, in_dim] -> [B]``.

    Paper Sec 3.2: "two fully-connected layers and one ReLU non-linearity layer in-between", fed
    with the flattened features of the backbone's last layer.
    """

    def __init__(self, in_dim: int, hidden: int = 512) -> None:
        super().__init__()
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 1)
        )

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        return self.mlp(feat).squeeze(1)  # (B,)


class Classifier(nn.Sequential):
    """Fine-tuning classifier ``[B, in_dim] -> [B, num_classes]`` logits: Dropout -> Linear."""

    def __init__(self, in_dim: int, num_classes: int, dropout: float = 0.5) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes = {num_classes} is not allowed: an integer >= 1")
        super().__init__(nn.Dropout(dropout), nn.Linear(in_dim, num_classes))
