"""Typed configuration, one dataclass per concern.

The workflow validates ``config/*.yaml`` against ``workflow/schemas/config.schema.yaml`` before any
job runs; each CLI command then builds the dataclasses it needs from the JSON it is handed with
:func:`load_section`, which rejects unknown keys and bad values with a message naming the key, the
value and what is allowed. Value checks that span fields live in ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A setting is wrong; the message names it, its value and what is allowed."""


def _check(cond: bool, key: str, value: Any, allowed: str) -> None:
    if not cond:
        raise ConfigError(f"{key} = {value!r} is not allowed: {allowed}")


@dataclass
class StoreConfig:
    short_side: int = 128  # frames are resized so the short side is this many pixels
    codec: Literal["h264", "jpeg"] = "h264"  # h264: ~8x smaller than jpeg, see docs/data.md
    gop: int = 16  # keyframe interval of the h264 store: bounds the frames decoded per seek
    crf: int = 20  # x264 quality (lower = better, bigger)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        _check(self.short_side >= 16, "short_side", self.short_side, "an integer >= 16")
        _check(self.codec in ("h264", "jpeg"), "codec", self.codec, "'h264' or 'jpeg'")
        _check(self.gop >= 1, "gop", self.gop, "an integer >= 1")
        _check(0 <= self.crf <= 51, "crf", self.crf, "an integer in [0, 51]")


@dataclass
class SyntheticConfig:
    classes: int = 8  # motion classes, at most len(sstl.data.synthetic.MOTIONS)
    train_per_class: int = 24  # videos per class in trainlist01
    test_per_class: int = 8  # videos per class in testlist01
    frames: int = 48  # frames per video
    size: int = 64  # frame height and width in pixels
    fps: int = 25
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.classes >= 2, "classes", self.classes, "an integer >= 2")
        _check(self.train_per_class >= 1, "train_per_class", self.train_per_class, ">= 1")
        _check(self.test_per_class >= 1, "test_per_class", self.test_per_class, ">= 1")
        _check(self.frames >= 16, "frames", self.frames, "an integer >= 16")
        _check(
            self.size >= 16 and self.size % 2 == 0, "size", self.size, "an even integer >= 16"
        )  # yuv420p video needs even dimensions


@dataclass
class TemporalConfig:
    clip_len: int = 16  # T: frames the model sees
    buffer: int = 12  # e: extra frames in the sampled window (T + e), Table 4 "Input frames"
    n_drop: int = 4  # frames removed by temporal dropout, no two adjacent
    speed_distortion: bool = True  # playback-rate distortion p ~ U(rate_range)
    rate_range: tuple[float, float] = (1.0, 1.25)

    def __post_init__(self) -> None:
        self.rate_range = tuple(self.rate_range)
        _check(self.clip_len >= 1, "clip_len", self.clip_len, "an integer >= 1")
        _check(self.buffer >= 0, "buffer", self.buffer, "an integer >= 0")
        _check(
            0 <= self.n_drop <= self.buffer,
            "n_drop",
            self.n_drop,
            f"an integer in [0, temporal.buffer={self.buffer}] (the window has clip_len + buffer "
            "frames and at least clip_len must remain)",
        )
        # n_drop non-adjacent frames need n_drop gaps: window >= 2 * n_drop - 1 frames.
        _check(
            self.clip_len + self.buffer >= 2 * self.n_drop - 1,
            "n_drop",
            self.n_drop,
            "small enough that n_drop non-adjacent frames fit in the window",
        )
        lo, hi = self.rate_range
        _check(1.0 <= lo <= hi, "rate_range", self.rate_range, "1.0 <= low <= high")

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
        _check(self.crop_size >= 8, "crop_size", self.crop_size, "an integer >= 8")
        for name in ("jitter_prob", "grayscale_prob", "blur_prob", "flip_prob"):
            v = getattr(self, name)
            _check(0.0 <= v <= 1.0, name, v, "a probability in [0, 1]")
        _check(0 < self.scale[0] <= self.scale[1] <= 1, "scale", self.scale, "0<lo<=hi<=1")
        _check(0 <= self.hue <= 0.5, "hue", self.hue, "a number in [0, 0.5]")


@dataclass
class ModelConfig:
    arch: Literal["r3d_18", "r3d_tiny"] = "r3d_18"  # r3d_tiny: narrow 3D ResNet for the CPU demo
    width: int = 64  # base width of r3d_tiny (r3d_18 is fixed at 64); feature dim = 8 * width
    stem_pool: bool = False  # max-pool with spatial stride 2 after the stem (paper Sec 4.2)
    proj_hidden: int = 512
    proj_dim: int = 512  # projection output dimension (Figure 4 sweeps it)
    speed_head: bool = True  # playback-rate prediction branch
    channels_last: bool = False  # torch.channels_last_3d memory format

    def __post_init__(self) -> None:
        _check(self.arch in ("r3d_18", "r3d_tiny"), "arch", self.arch, "r3d_18 | r3d_tiny")
        _check(self.width >= 4, "width", self.width, "an integer >= 4")
        _check(self.proj_dim >= 1, "proj_dim", self.proj_dim, "an integer >= 1")


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
        _check(self.slots >= 1, "slots", self.slots, "an integer >= 1")
        _check(0.0 <= self.momentum <= 1.0, "momentum", self.momentum, "a number in [0, 1]")
        _check(0.0 < self.attenuation < 1.0, "attenuation", self.attenuation, "a number in (0, 1)")
        _check(self.rule in ("text", "literal"), "rule", self.rule, "'text' or 'literal'")
        _check(self.negatives >= 0, "negatives", self.negatives, "an integer >= 0")


@dataclass
class LossConfig:
    temperature: float = 0.1
    w_ctr: float = 1.0
    w_spd: float = 0.1
    w_video: float = 0.2

    def __post_init__(self) -> None:
        _check(self.temperature > 0, "temperature", self.temperature, "a number > 0")
        for name in ("w_ctr", "w_spd", "w_video"):
            _check(getattr(self, name) >= 0, name, getattr(self, name), "a number >= 0")


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
        _check(self.epochs >= 1, "epochs", self.epochs, "an integer >= 1")
        _check(self.batch_size >= 1, "batch_size", self.batch_size, "an integer >= 1")
        _check(self.lr > 0, "lr", self.lr, "a number > 0")
        _check(self.ref_batch >= 1, "ref_batch", self.ref_batch, "an integer >= 1")
        _check(0 <= self.momentum < 1, "momentum", self.momentum, "a number in [0, 1)")
        _check(self.weight_decay >= 0, "weight_decay", self.weight_decay, "a number >= 0")
        _check(
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


@dataclass
class PretrainConfig:
    dataset: str = "synthetic"
    split: str = "train"
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
    eval_clips: int = 5  # clips per test video at evaluation (Sec 4.2)
    val_every: int = 1  # epochs between validations


@dataclass
class RetrievalConfig:
    clips: int = 10  # clips of clip_len consecutive frames per video, uniformly spaced
    clip_len: int = 16
    ks: tuple[int, ...] = (1, 5, 10, 20, 50)
    layer: Literal["projection", "backbone"] = "projection"
    protocol: Literal["clip", "video_mean"] = "clip"  # video_mean: VCOP averages a video's clips
    center: bool = False  # CoCLR: subtract the gallery mean, then L2-normalise
    backend: Literal["faiss", "torch"] = "faiss"
    crop_size: int = 112  # centre crop
    batch_size: int = 32
    workers: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        self.ks = tuple(self.ks)
        _check(self.clips >= 1, "clips", self.clips, "an integer >= 1")
        _check(all(k >= 1 for k in self.ks), "ks", self.ks, "integers >= 1")


_SIMPLE = (int, float, str, bool)


def _convert(tp: Any, value: Any, where: str) -> Any:
    """Coerce ``value`` to the annotated type ``tp``, raising ConfigError naming ``where``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return load_section(tp, value, where)
    if origin is Literal:
        _check(value in args, where, value, "one of " + ", ".join(repr(a) for a in args))
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), where, value, "a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        _check(len(value) == len(args), where, value, f"a list of {len(args)} values")
        return tuple(
            _convert(a, v, f"{where}[{i}]")
            for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if tp is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            where,
            value,
            "a number",
        )
        return float(value)
    if tp is int:
        _check(isinstance(value, int) and not isinstance(value, bool), where, value, "an integer")
        return value
    if tp is bool:
        _check(isinstance(value, bool), where, value, "true or false")
        return value
    if tp is str:
        _check(isinstance(value, str), where, value, "a string")
        return value
    return value


def load_section(cls: type[T], mapping: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass ``cls`` from a plain mapping; unknown keys and bad types are errors.

    ``where`` is the dotted path of the section in the config file, used in messages.
    """
    mapping = {} if mapping is None else mapping
    prefix = f"{where}." if where else ""
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where or 'config'} = {mapping!r} is not allowed: a mapping")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(mapping) - names)
    if unknown:
        raise ConfigError(
            f"unknown key {prefix}{unknown[0]} (value {mapping[unknown[0]]!r}); "
            f"allowed keys: {', '.join(sorted(names))}"
        )
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for k, v in mapping.items():
        f = fields[k]
        # A partial nested section fills its gaps from the PARENT's default for that field
        # (FinetuneConfig.optim defaults to lr 0.02 / multistep, not OptimConfig's own defaults).
        if (
            dataclasses.is_dataclass(hints[k])
            and isinstance(v, Mapping)
            and f.default_factory is not dataclasses.MISSING
        ):
            v = {**_shallow_fields(f.default_factory()), **v}
        kwargs[k] = _convert(hints[k], v, f"{prefix}{k}")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{prefix}{err}") from None


def _shallow_fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}


def to_dict(obj: Any) -> dict[str, Any]:
    """Dataclass to plain (JSON-able) dict, tuples as lists."""
    return dataclasses.asdict(obj)


@dataclass
class DatasetConfig:
    """Where one dataset's videos come from (``config.datasets.<name>``)."""

    source: Literal["generate", "download", "local"] = "download"
    urls: tuple[str, ...] = ()  # archives to download (download)
    sha256: dict[str, str] = field(default_factory=dict)  # archive file name -> expected sha256
    local_path: str | None = None  # existing copy of the videos (local)
    split: int = 1  # official split number (1-3) for UCF101 / HMDB51
    allow_missing: bool = False  # local UCF101/HMDB51 copy: proceed when listed videos are absent

    def __post_init__(self) -> None:
        self.urls = tuple(self.urls)
        _check(
            self.source in ("generate", "download", "local"),
            "source",
            self.source,
            "'generate', 'download' or 'local'",
        )
        _check(self.split in (1, 2, 3), "split", self.split, "1, 2 or 3")
        if self.source == "local":
            _check(
                bool(self.local_path),
                "local_path",
                self.local_path,
                "a folder holding the videos when source is 'local'",
            )


@dataclass
class EvalConfig:
    clips: int = 5  # clips per test video, uniformly spaced (Sec 4.2)
    clip_len: int = 16
    crop_size: int = 112  # centre crop
    batch_size: int = 16  # videos per batch
    workers: int = 2
    device: Literal["auto", "cpu", "cuda"] = "auto"


@dataclass
class AnalysisConfig:
    """Figures 1 and 2: clip-feature similarity statistics of a pretrained model."""

    videos: int = 64  # test videos sampled for the statistics
    strengths: tuple[int, ...] = (0, 4, 8, 12, 16)  # Figure 1: buffer frames e of the augmentation
    clips_per_video: int = 8  # Figure 2: clips per video for intra/inter and distance curves
    clip_len: int = 16
    crop_size: int = 112
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        self.strengths = tuple(self.strengths)
