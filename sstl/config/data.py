"""Data-stage sections: where a dataset's videos come from, the synthetic set, the frame store."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from sstl.config.loader import at_least, check


@dataclass
class DatasetConfig:
    """Where one dataset's videos come from (``config.datasets.<name>``)."""

    source: Literal["generate", "download", "local"] = "download"
    urls: tuple[str, ...] = ()  # archives to download (download)
    sha256: dict[str, str] = field(default_factory=dict)  # archive file name -> expected sha256
    local_path: str | None = None  # existing copy of the videos (local)
    # folder of split / annotation files used instead of the packaged official ones (Kinetics-400:
    # train.csv, validate.csv; UCF101: classInd.txt + trainlist/testlist; HMDB51: *_test_split*)
    annotations: str | None = None
    split: int = 1  # official split number (1-3) for UCF101 / HMDB51
    allow_missing: bool = False  # UCF101/HMDB51: proceed when listed videos are absent
    min_present: float = 0.5  # fetch fails below this fraction of a split part's videos present
    # Decompression-bomb guards, per archive: videos barely compress (UCF101.rar 6.5 -> 6.9 GB)
    max_unpacked_gb: float = 100.0  # refuse an archive that expands to more than this
    max_unpack_ratio: float = 10.0  # ... or to more than this many times its size (beyond 64 MB)

    def __post_init__(self) -> None:
        self.urls = tuple(self.urls)
        check(self.max_unpacked_gb > 0, "max_unpacked_gb", self.max_unpacked_gb, "a number > 0")
        check(
            self.max_unpack_ratio >= 1, "max_unpack_ratio", self.max_unpack_ratio, "a number >= 1"
        )
        check(
            self.source in ("generate", "download", "local"),
            "source",
            self.source,
            "'generate', 'download' or 'local'",
        )
        check(self.split in (1, 2, 3), "split", self.split, "1, 2 or 3")
        check(0 <= self.min_present <= 1, "min_present", self.min_present, "a fraction in [0, 1]")
        if self.source == "local":
            check(
                bool(self.local_path),
                "local_path",
                self.local_path,
                "a folder holding the videos when source is 'local'",
            )


@dataclass
class StoreConfig:
    short_side: int = 128  # frames are resized so the short side is this many pixels
    codec: Literal["h264", "jpeg"] = "h264"  # h264: ~8x smaller than jpeg, see docs/data.md
    gop: int = 16  # keyframe interval of the h264 store: bounds the frames decoded per seek
    crf: int = 20  # x264 quality (lower = better, bigger)
    jpeg_quality: int = 90

    def __post_init__(self) -> None:
        check(self.short_side >= 16, "short_side", self.short_side, "an integer >= 16")
        check(self.codec in ("h264", "jpeg"), "codec", self.codec, "'h264' or 'jpeg'")
        check(self.gop >= 1, "gop", self.gop, "an integer >= 1")
        check(0 <= self.crf <= 51, "crf", self.crf, "an integer in [0, 51]")
        check(1 <= self.jpeg_quality <= 100, "jpeg_quality", self.jpeg_quality, "in [1, 100]")


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
        check(self.classes >= 2, "classes", self.classes, "an integer >= 2")
        check(self.train_per_class >= 1, "train_per_class", self.train_per_class, ">= 1")
        check(self.test_per_class >= 1, "test_per_class", self.test_per_class, ">= 1")
        at_least(self, 1, "fps")
        check(self.frames >= 16, "frames", self.frames, "an integer >= 16")
        check(
            self.size >= 16 and self.size % 2 == 0, "size", self.size, "an even integer >= 16"
        )  # yuv420p video needs even dimensions
