"""Evaluation sections: ``evaluate`` (video accuracy), ``retrieval`` and ``analysis``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sstl.config.loader import at_least, check


@dataclass
class EvalConfig:
    clips: int = 5  # clips per test video, uniformly spaced (Sec 4.2)
    clip_len: int = 16
    crop_size: int = 112  # centre crop
    batch_size: int = 16  # videos per batch
    workers: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        at_least(self, 1, "clips", "clip_len", "batch_size")
        at_least(self, 8, "crop_size")
        at_least(self, 0, "workers")


@dataclass
class AnalysisConfig:
    """Figures 1 and 2: clip-feature similarity statistics of a pretrained model."""

    videos: int = 64  # test videos sampled for the statistics
    strengths: tuple[int, ...] = (0, 4, 8, 12, 16)  # Figure 1: buffer frames e of the augmentation
    clips_per_video: int = 8  # Figure 2: clips per video for intra/inter and distance curves
    clip_len: int = 16
    crop_size: int = 112
    # the features compared: the projection (SSTL's contrastive space) or the pooled backbone
    # feature (a supervised model's, whose projection head is never trained)
    layer: Literal["projection", "backbone"] = "projection"
    seed: int = 0
    batch_size: int = 8  # videos per forward (Figure 1: 2 views each; Figure 2: K clips each)
    workers: int = 2  # DataLoader processes decoding the store
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        self.strengths = tuple(self.strengths)
        check(self.videos >= 2, "videos", self.videos, "an integer >= 2")
        check(self.clips_per_video >= 2, "clips_per_video", self.clips_per_video, ">= 2")
        at_least(self, 0, "strengths", "workers")
        at_least(self, 1, "clip_len", "batch_size")
        at_least(self, 8, "crop_size")


@dataclass
class RetrievalConfig:
    clips: int = 10  # clips of clip_len consecutive frames per video, uniformly spaced
    clip_len: int = 16
    ks: tuple[int, ...] = (1, 5, 10, 20, 50)
    layer: Literal["projection", "backbone"] = "projection"
    protocol: Literal["clip", "video_mean"] = "clip"  # video_mean: VCOP averages a video's clips
    center: bool = False  # CoCLR: subtract the gallery mean, then L2-normalise
    backend: Literal["int8", "faiss", "torch"] = "int8"  # sstl.eval.retrieval
    crop_size: int = 112  # centre crop
    batch_size: int = 32
    workers: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks)
        at_least(self, 1, "clips", "clip_len", "ks", "batch_size")
        check(len(self.ks) >= 1, "ks", self.ks, "at least one k")
        at_least(self, 8, "crop_size")
        at_least(self, 0, "workers")
