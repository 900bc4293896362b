"""Training sections: the parts (clips, augmentation, model, memory, loss, optimiser, run) and the
``pretrain`` / ``finetune`` stage configs composed from them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sstl.config.loader import at_least, check


@dataclass
class TemporalConfig:
    clip_len: int = 16  # T: frames the model sees
    buffer: int = 12  # e: extra frames in the sampled window (T + e), Table 4 "Input frames"
    n_drop: int = 4  # frames removed by temporal dropout, no two adjacent
    speed_distortion: bool = True  # playback-rate distortion p ~ U(rate_range)
    rate_range: tuple[float, float] = (1.0, 1.25)

    def __post_init__(self) -> None:
        self.rate_range = tuple(self.rate_range)
        at_least(self, 1, "clip_len")
        at_least(self, 0, "buffer")
        check(
            0 <= self.n_drop <= self.buffer,
            "n_drop",
            self.n_drop,
            f"an integer in [0, temporal.buffer={self.buffer}] (the window has clip_len + buffer "
            "frames and at least clip_len must remain)",
        )
        # n_drop non-adjacent frames need n_drop gaps: window >= 2 * n_drop - 1 frames.
        check(
            self.clip_len + self.buffer >= 2 * self.n_drop - 1,
            "n_drop",
            self.n_drop,
            "small enough that n_drop non-adjacent frames fit in the window",
        )
        lo, hi = self.rate_range
        check(1.0 <= lo <= hi, "rate_range", self.rate_range, "1.0 <= low <= high")

    @property
    def window(self) -> int:
        return self.clip_len + self.buffer


@dataclass
class SpatialConfig:
    crop_size: int = 112
    scale: tuple[float, float] = (0.2, 1.0)  # random resized crop area fraction
    ratio: tuple[float, float] = (0.75, 1.3333)
    jitter_prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    grayscale_prob: float = 0.2
    blur_prob: float = 0.5
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    flip_prob: float = 0.5
    share_views: bool = False  # True: both views get the same spatial parameters (METHOD §3)
    enabled: bool = True  # False: centre crop only (Table 4 first row has no colour jitter)
    color: bool = True  # colour jitter, grayscale and blur on/off (Table 4 "Color jittering")

    def __post_init__(self) -> None:
        self.scale, self.ratio, self.blur_sigma = (
            tuple(self.scale),
            tuple(self.ratio),
            tuple(self.blur_sigma),
        )
        at_least(self, 8, "crop_size")
        at_least(self, 0, "brightness", "contrast", "saturation")
        for name in ("jitter_prob", "grayscale_prob", "blur_prob", "flip_prob"):
            v = getattr(self, name)
            check(0.0 <= v <= 1.0, name, v, "a probability in [0, 1]")
        check(0 < self.scale[0] <= self.scale[1] <= 1, "scale", self.scale, "0<lo<=hi<=1")
        check(0 < self.ratio[0] <= self.ratio[1], "ratio", self.ratio, "0 < low <= high")
        lo, hi = self.blur_sigma
        check(0 < lo <= hi, "blur_sigma", self.blur_sigma, "0 < low <= high")
        check(0 <= self.hue <= 0.5, "hue", self.hue, "a number in [0, 0.5]")


StemPool = Literal["none", "space", "spacetime"]
STEM_POOL_HINT = (
    "stem_pool is no longer true/false: write 'space' for the old true, 'none' for the old "
    "false, or 'spacetime', the paper's reading"
)


@dataclass
class ModelConfig:
    arch: Literal["r3d_18", "r3d_tiny"] = "r3d_18"  # r3d_tiny: narrow 3D ResNet for the CPU demo
    width: int = 64  # base width of r3d_tiny (r3d_18 is fixed at 64); feature dim = 8 * width
    # max-pool with stride 2 after the stem (paper Sec 4.2): none, space (1, 2, 2) or spacetime
    # (2, 2, 2), the reading that fits the paper's "8x" batch (notes.md)
    stem_pool: StemPool = field(default="none", metadata={"hint": STEM_POOL_HINT})
    proj_hidden: int = 512
    proj_dim: int = 512  # projection output dimension (Figure 4 sweeps it)
    speed_head: bool = True  # playback-rate prediction branch
    channels_last: bool = False  # torch.channels_last_3d memory format

    def __post_init__(self) -> None:
        check(self.arch in ("r3d_18", "r3d_tiny"), "arch", self.arch, "r3d_18 | r3d_tiny")
        at_least(self, 4, "width")
        at_least(self, 1, "proj_hidden", "proj_dim")


@dataclass
class MemoryConfig:
    enabled: bool = True
    slots: int = 2  # L: temporal slots per video (1 = Table 5's common memory bank)
    momentum: float = 0.5  # m
    attenuation: float = 0.6  # c
    rule: Literal["text", "literal"] = "text"  # neighbour update reading of Eq. 2 (METHOD §5)
    neighbour_update: bool = True  # False: only the clip's own slot moves
    negatives: int = 2048  # K: memory features used as extra negatives (0 = none)
    video_loss: bool = True  # clip-to-video loss against the memory row

    def __post_init__(self) -> None:
        at_least(self, 1, "slots")
        check(0.0 <= self.momentum <= 1.0, "momentum", self.momentum, "a number in [0, 1]")
        check(0.0 < self.attenuation < 1.0, "attenuation", self.attenuation, "a number in (0, 1)")
        check(self.rule in ("text", "literal"), "rule", self.rule, "'text' or 'literal'")
        at_least(self, 0, "negatives")


@dataclass
class LossConfig:
    temperature: float = 0.1
    w_ctr: float = 1.0
    w_spd: float = 0.1
    w_video: float = 0.2

    def __post_init__(self) -> None:
        check(self.temperature > 0, "temperature", self.temperature, "a number > 0")
        at_least(self, 0, "w_ctr", "w_spd", "w_video")


@dataclass
class OptimConfig:
    epochs: int = 300
    batch_size: int = 64  # global batch (all ranks together)
    lr: float = 2.0  # learning rate at batch size ref_batch; scaled linearly with batch_size
    ref_batch: int = 2048
    momentum: float = 0.9
    weight_decay: float = 1e-6
    warmup_epochs: float = 0.0
    schedule: Literal["cosine", "multistep"] = "cosine"
    milestones: tuple[int, ...] = (50, 80, 100)  # multistep: epochs where lr *= gamma
    gamma: float = 0.15

    def __post_init__(self) -> None:
        self.milestones = tuple(self.milestones)
        at_least(self, 1, "epochs", "batch_size", "ref_batch", "milestones")
        at_least(self, 0, "weight_decay", "warmup_epochs")
        check(self.gamma > 0, "gamma", self.gamma, "a number > 0")
        check(self.lr > 0, "lr", self.lr, "a number > 0")
        check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        check(
            self.schedule in ("cosine", "multistep"), "schedule", self.schedule, "cosine|multistep"
        )

    @property
    def scaled_lr(self) -> float:
        return self.lr * self.batch_size / self.ref_batch


@dataclass
class RunConfig:
    """How a training run executes (not what it learns)."""

    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    amp: bool = True  # bf16 autocast on GPU; ignored on CPU
    workers: int = 2  # DataLoader worker processes per rank
    save_every: int = 50  # steps between resume states
    log_every: int = 10  # steps between metric lines
    deterministic: bool = False  # torch.use_deterministic_algorithms + fixed worker seeds
    max_steps: int = 0  # stop after this many steps in total (0 = no limit; for tests and benches)

    def __post_init__(self) -> None:
        at_least(self, 0, "workers", "max_steps")
        at_least(self, 1, "save_every", "log_every")


@dataclass
class PretrainConfig:
    dataset: str = "synthetic"
    split: Literal["train"] = "train"  # the official training part (the test part is held out)
    model: ModelConfig = field(default_factory=ModelConfig)
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    spatial: SpatialConfig = field(default_factory=SpatialConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


@dataclass
class FinetuneConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    spatial: SpatialConfig = field(default_factory=SpatialConfig)
    clip_len: int = 16
    optim: OptimConfig = field(
        default_factory=lambda: OptimConfig(
            epochs=120,
            batch_size=64,
            lr=0.02,
            ref_batch=64,
            weight_decay=0.01,
            schedule="multistep",
            milestones=(50, 80, 100),
            gamma=0.15,
        )
    )
    run: RunConfig = field(default_factory=RunConfig)
    dropout: float = 0.5
    val_every: int = 1  # epochs between validations

    def __post_init__(self) -> None:
        at_least(self, 1, "clip_len", "val_every")
        check(0 <= self.dropout < 1, "dropout", self.dropout, "a probability in [0, 1)")
