"""The frame store: one compact file per video, resized once, with exact random access.

Two codecs (measurements and the choice in docs/data.md):

- ``h264`` (default, ``.mp4``): libx264 with a keyframe every ``gop`` frames, no B-frames and
  closed GOPs, frame ``i`` at pts ``i`` (time base 1/fps). A read seeks to the keyframe at or
  before the first wanted frame and decodes forward; frames are identified by pts, so the result
  equals decoding the whole file sequentially. ~0.2x the size of the source videos. The same
  source and config give the same bytes, run after run, whatever the CPU (``_X264_EXACT``).
- ``jpeg`` (``.jpgs``): every frame a JPEG, packed in one file behind an offset table; a read
  decodes only the asked frames. Faster to read, ~10x bigger than h264.

Both embed a JSON header (the StoreConfig, the writer's revision, caller metadata such as the
source checksum) so a file describes itself and an interrupted extraction can tell finished files.
"""

from __future__ import annotations

import json
import os
import struct
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import torch
from av.video.reformatter import VideoReformatter
from torchvision.io import decode_jpeg, encode_jpeg

from sstl.config import StoreConfig
from sstl.data.video import VideoDecodeError, iter_frames, source_fps

# torchvision 0.29 deprecates its JPEG codec in favour of torchcodec; it still works, and only
# the optional jpeg store uses it, so one notice per process is not worth a warning per frame.
warnings.filterwarnings(
    "ignore",
    message="The image decoding and encoding capabilities of TorchVision",
    category=DeprecationWarning,
)

STORE_EXT = {"h264": ".mp4", "jpeg": ".jpgs"}
_JPEG_MAGIC = b"SSTLJPG1"
_PRESET = "fast"  # x264 speed/size trade-off: slower presets gain <1% size on 128p clips
# tune=fastdecode (CAVLC, no weighted prediction): ~30% faster random reads for ~6% more bytes
_TUNE = "fastdecode"
# Same bytes every run: x264's AVX-512 mbtree code handles 8 macroblocks per step past the end of
# a row and so mixes never-written memory into the qp offsets; cpu-independent=1 selects its exact
# C mbtree code. One thread: x264's output depends on its thread count. Details: docs/data.md.
_X264_EXACT = "cpu-independent=1"
# Bumped when a writer's bytes for the same source and config change, so that extraction rewrites
# older files; a header without "revision" is revision 1 (h264 before _X264_EXACT).
STORE_REVISION = {"h264": 2, "jpeg": 1}


@dataclass
class StoreInfo:
    num_frames: int
    fps: float
    width: int
    height: int
    size: int  # bytes of the store file


def store_ext(codec: str) -> str:
    """File extension of a store written with ``codec`` (``.mp4`` or ``.jpgs``)."""
    if codec not in STORE_EXT:
        raise ValueError(f"store codec {codec!r} is unknown: use one of {sorted(STORE_EXT)}")
    return STORE_EXT[codec]


def _rate(fps: Fraction) -> Fraction:
    # mp4 needs an integer timescale; 30000/1001 and 2997/100 survive, noise digits do not.
    return Fraction(fps).limit_denominator(1001)


def _write_h264(
    frames: Iterable[np.ndarray], tmp: Path, fps: Fraction, cfg: StoreConfig, header: dict[str, Any]
) -> tuple[int, int, int]:
    out = av.open(str(tmp), "w", format="mp4")
    out.metadata["comment"] = json.dumps(header, sort_keys=True)
    stream, n, size = None, 0, (0, 0)
    with out:
        for n, rgb in enumerate(frames, start=1):
            if stream is None:
                size = (rgb.shape[1], rgb.shape[0])
                stream = out.add_stream("libx264", rate=fps)
                stream.width, stream.height = size
                stream.pix_fmt = "yuv420p"
                stream.codec_context.gop_size = cfg.gop
                stream.codec_context.thread_count = 1  # see _X264_EXACT
                stream.options = {
                    "crf": str(cfg.crf),
                    "preset": _PRESET,
                    "tune": _TUNE,
                    "bf": "0",
                    # fixed keyframe spacing (no scene-cut keyframes), closed GOPs: every
                    # keyframe is an IDR that a seek can start decoding from.
                    "x264-params": f"keyint={cfg.gop}:min-keyint={cfg.gop}:scenecut=0:"
                    f"bframes=0:open-gop=0:{_X264_EXACT}",
                }
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = n - 1, 1 / fps
            out.mux(stream.encode(frame))
        if stream is not None:
            out.mux(stream.encode(None))
    return n, *size


def _write_jpeg(
    frames: Iterable[np.ndarray], tmp: Path, fps: Fraction, cfg: StoreConfig, header: dict[str, Any]
) -> tuple[int, int, int]:
    blobs, size = [], (0, 0)
    for rgb in frames:
        size = (rgb.shape[1], rgb.shape[0])
        chw = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        blobs.append(encode_jpeg(chw, quality=cfg.jpeg_quality).numpy().tobytes())
    head = dict(
        header,
        num_frames=len(blobs),
        width=size[0],
        height=size[1],
        fps=[fps.numerator, fps.denominator],
    )
    head_bytes = json.dumps(head, sort_keys=True).encode()
    offsets = np.zeros(len(blobs) + 1, dtype="<u8")
    offsets[1:] = np.cumsum([len(b) for b in blobs])
    with open(tmp, "wb") as f:
        f.write(_JPEG_MAGIC + struct.pack("<I", len(head_bytes)) + head_bytes)
        f.write(offsets.tobytes())
        f.writelines(blobs)
    return len(blobs), *size


def write_store(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    cfg: StoreConfig,
    meta: dict[str, Any] | None = None,
) -> StoreInfo:
    """Decode ``src`` once (resized to ``cfg.short_side``) into the store file ``dst``.

    ``meta`` (JSON-able) is embedded in the file header; read it back with
    ``StoreReader(dst).meta``. The file is written under a temporary name and renamed, so
    ``dst`` is either absent or complete. Raises VideoDecodeError when ``src`` cannot be decoded
    (no file is left behind).
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    fps = _rate(source_fps(src))
    revision = STORE_REVISION[cfg.codec]
    header = {"sstl_store": 1, "revision": revision, "config": asdict(cfg), "meta": meta or {}}
    writer = {"h264": _write_h264, "jpeg": _write_jpeg}[cfg.codec]
    try:
        n, width, height = writer(iter_frames(src, cfg.short_side), tmp, fps, cfg, header)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return StoreInfo(n, float(fps), width, height, dst.stat().st_size)


class StoreReader:
    """Random access to one store file: ``read(indices) -> [T, H, W, 3]`` uint8 RGB.

    The file is opened lazily and reopened in a new process, and pickling drops the handle, so
    a reader can be built in the main process and used in DataLoader workers.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        self.path = Path(path)
        self.threads = threads  # decoder threads (h264); 1 suits one reader per worker process
        self._pid: int | None = None
        self._handle: Any = None
        self._head: dict[str, Any] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "threads": self.threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], state["threads"])

    def __enter__(self) -> StoreReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None and self._pid == os.getpid():
            if self.kind == "h264":
                self._handle[0].close()
            else:
                os.close(self._handle)
        self._handle, self._pid = None, None

    def _open(self) -> Any:
        if self._handle is not None and self._pid == os.getpid():
            return self._handle
        self._handle = None  # a handle inherited through fork belongs to the parent
        try:
            with open(self.path, "rb") as f:
                self.kind = "jpeg" if f.read(len(_JPEG_MAGIC)) == _JPEG_MAGIC else "h264"
            self._handle = self._open_jpeg() if self.kind == "jpeg" else self._open_h264()
        except (OSError, av.FFmpegError, IndexError, ValueError, KeyError, struct.error) as err:
            raise VideoDecodeError(self.path, f"not a readable store file ({err})") from err
        self._pid = os.getpid()
        return self._handle

    def _open_h264(self) -> tuple[Any, Any]:
        container = av.open(str(self.path))
        try:
            stream = container.streams.video[0]
            self._head = json.loads(container.metadata.get("comment", "{}"))
        except (IndexError, ValueError):
            container.close()
            raise
        stream.thread_count = self.threads
        rate = Fraction(stream.average_rate or stream.guessed_rate)
        # pts -> frame index: pts * time_base * rate (the muxer may rescale our 1/fps base);
        # kept as integers because Fraction arithmetic per frame costs ~0.1 ms per window
        scale = Fraction(stream.time_base) * rate
        self._pts_num, self._pts_den = scale.numerator, scale.denominator
        ctx = stream.codec_context
        self._head.update(num_frames=stream.frames, width=ctx.width, height=ctx.height,
                          fps=[rate.numerator, rate.denominator])  # fmt: skip
        self._reformatter = VideoReformatter()
        return container, stream

    def _open_jpeg(self) -> int:
        fd = os.open(self.path, os.O_RDONLY)
        try:
            start = len(_JPEG_MAGIC) + 4
            (n,) = struct.unpack("<I", os.pread(fd, 4, len(_JPEG_MAGIC)))
            self._head = json.loads(os.pread(fd, n, start))
            raw = os.pread(fd, 8 * (self._head["num_frames"] + 1), start + n)
            self._offsets = np.frombuffer(raw, dtype="<u8").astype(np.int64) + start + n + len(raw)
        except BaseException:
            os.close(fd)
            raise
        return fd

    def _get(self, key: str) -> Any:
        self._open()
        return self._head.get(key)

    num_frames = property(lambda self: int(self._get("num_frames")))
    width = property(lambda self: int(self._get("width")))
    height = property(lambda self: int(self._get("height")))
    fps = property(lambda self: float(Fraction(*self._get("fps"))))
    config = property(lambda self: dict(self._get("config") or {}), doc="StoreConfig as dict")
    meta = property(lambda self: dict(self._get("meta") or {}), doc="write_store's meta")
    revision = property(lambda self: int(self._get("revision") or 1), doc="see STORE_REVISION")

    def read(self, indices: Sequence[int]) -> torch.Tensor:
        """Frames ``indices`` (any order, repeats allowed) as ``[T, H, W, 3]`` uint8 RGB."""
        wanted = [int(i) for i in indices]
        handle, n = self._open(), self.num_frames
        bad = [i for i in wanted if not 0 <= i < n]
        if not wanted or bad:
            raise IndexError(
                f"{self.path}: frame indices must be a non-empty list in [0, {n}); got {bad[:5]}"
            )
        unique = sorted(set(wanted))
        read = self._read_jpeg if self.kind == "jpeg" else self._read_h264
        try:
            frames = read(handle, unique)
        except (av.FFmpegError, RuntimeError) as err:
            raise VideoDecodeError(self.path, f"damaged store file ({err})") from err
        return torch.stack([frames[i] for i in wanted])

    def _read_jpeg(self, fd: int, unique: list[int]) -> dict[int, torch.Tensor]:
        blobs = []
        for i in unique:
            size = int(self._offsets[i + 1] - self._offsets[i])
            data = os.pread(fd, size, int(self._offsets[i]))
            if len(data) != size:
                raise VideoDecodeError(self.path, f"truncated: frame {i} is cut off")
            blobs.append(torch.frombuffer(bytearray(data), dtype=torch.uint8))
        images = decode_jpeg(blobs)  # list of [3, H, W]
        return {i: img.permute(1, 2, 0) for i, img in zip(unique, images, strict=True)}

    def _read_h264(self, handle: tuple[Any, Any], unique: list[int]) -> dict[int, torch.Tensor]:
        container, stream = handle
        gop = int(self._head.get("config", {}).get("gop", 1))
        # Runs of wanted frames decoded without seeking: continue past a frame only while the
        # next wanted frame's keyframe is not beyond it (a seek would skip no work).
        runs: list[list[int]] = []
        for i in unique:
            if runs and i - i % gop <= runs[-1][-1]:
                runs[-1].append(i)
            else:
                runs.append([i])
        out: dict[int, torch.Tensor] = {}
        for run in runs:
            need, last = set(run), run[-1]
            num, den = self._pts_num, self._pts_den
            container.seek((run[0] * den + num // 2) // num, stream=stream, backward=True)
            for frame in container.decode(stream):
                index = (frame.pts * num + den // 2) // den
                if index in need:
                    # threads=1: swscale's thread pool costs 7x the conversion of a 128p frame
                    rgb = self._reformatter.reformat(frame, format="rgb24", threads=1)
                    out[index] = torch.from_numpy(rgb.to_ndarray())
                if index >= last:
                    break
            missing = need - out.keys()
            if missing:
                raise VideoDecodeError(self.path, f"store lacks frames {sorted(missing)[:5]}")
        return out
