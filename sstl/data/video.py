"""PyAV decoding of source videos: the exact, slow reference path.

Real dataset files break container metadata: raw MPEG-4 elementary streams (UCF101's ``.mp4``
files are really ``m4v``) carry no timestamps or frame count, and AVI headers can claim frames
that never decode. So every frame count here comes from decoding, and frames are identified by
the order the decoder emits them, never by timestamps. The fast path for training is the frame
store (:mod:`sstl.data.store`), written once from :func:`iter_frames`.

Only the video stream is demuxed and decoded (UCF101 AVIs carry mp3 audio). Any file that cannot
be decoded raises :class:`VideoDecodeError` naming the path and the cause.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from av.video.reformatter import Interpolation, VideoReformatter

DEFAULT_FPS = 25.0  # used only when a stream states no frame rate at all (raw streams)
# A container that declares N frames but decodes fewer than N - slack is cut short. The slack
# tolerates AVI headers that count dropped (not coded) frames the decoder never emits.
_MISSING_FRAC = 0.1
_MISSING_MIN = 2


class VideoDecodeError(Exception):
    """A video cannot be decoded; ``path`` names the file and ``reason`` the cause."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot decode video {self.path}: {reason}")


@dataclass
class VideoInfo:
    num_frames: int  # frames that actually decode
    fps: float
    width: int
    height: int


def _open(path: str | os.PathLike) -> tuple[av.container.InputContainer, av.video.VideoStream]:
    """Open ``path`` and its first video stream with threaded decoding, or raise."""
    p = Path(path)
    if not p.is_file():
        raise VideoDecodeError(path, "no such file")
    if p.stat().st_size == 0:
        raise VideoDecodeError(path, "file is empty (zero bytes)")
    try:
        container = av.open(str(p), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as err:
        raise VideoDecodeError(path, f"not a readable media file ({err})") from err
    if not container.streams.video:
        kinds = ", ".join(s.type for s in container.streams) or "none"
        container.close()
        raise VideoDecodeError(path, f"no video stream (streams: {kinds})")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads: decoding here is throughput-bound
    return container, stream


def stream_fps(stream: av.video.VideoStream) -> Fraction:
    """Nominal frame rate: average, else guessed, else base rate, else DEFAULT_FPS."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return Fraction(rate)
    return Fraction(DEFAULT_FPS)


def source_fps(path: str | os.PathLike) -> Fraction:
    """The nominal frame rate of ``path`` from its headers (no decoding)."""
    container, stream = _open(path)
    with container:
        return stream_fps(stream)


def _decoded(path: str | os.PathLike, container, stream) -> Iterator[av.VideoFrame]:
    """Frames in decoder output order; damage and truncation become VideoDecodeError.

    A truncated file ends inside a frame: FFmpeg conceals it and flags that last frame corrupt
    (seen on every cut UCF101 sample). Corrupt frames in the middle are concealed and kept.
    """
    count, last = 0, None
    try:
        for frame in container.decode(stream):
            if last is not None:
                yield last
            last = frame
            count += 1
    except av.FFmpegError as err:
        raise VideoDecodeError(path, f"decoding failed after {count} frames ({err})") from err
    if last is None:
        raise VideoDecodeError(path, "the video stream decodes to no frames")
    if last.is_corrupt:
        raise VideoDecodeError(path, f"truncated: frame {count - 1} (the last) is incomplete")
    declared = stream.frames
    if declared and count < declared - max(_MISSING_MIN, _MISSING_FRAC * declared):
        raise VideoDecodeError(
            path, f"truncated: the container declares {declared} frames, only {count} decode"
        )
    yield last


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count (by decoding every frame), frame rate and native size of ``path``."""
    container, stream = _open(path)
    with container:
        n = sum(1 for _ in _decoded(path, container, stream))
        fps = stream_fps(stream)
        ctx = stream.codec_context
        return VideoInfo(num_frames=n, fps=float(fps), width=ctx.width, height=ctx.height)


def read_frames(path: str | os.PathLike, indices: Sequence[int]) -> torch.Tensor:
    """Frames ``indices`` (any order, repeats allowed) as ``[T, H, W, 3]`` uint8 RGB.

    Decodes sequentially from the first frame up to ``max(indices)``: the reference that the
    store's random access is tested against.
    """
    wanted = [int(i) for i in indices]
    if not wanted:
        raise ValueError(f"read_frames({path}): indices is empty; ask for at least one frame")
    if min(wanted) < 0:
        raise VideoDecodeError(path, f"frame index {min(wanted)} is negative")
    need, last = set(wanted), max(wanted)
    container, stream = _open(path)
    got: dict[int, np.ndarray] = {}
    reformatter = VideoReformatter()
    with container:
        for i, frame in enumerate(_decoded(path, container, stream)):
            if i in need:
                got[i] = reformatter.reformat(frame, format="rgb24", threads=1).to_ndarray()
            if i == last:
                break
    if last not in got:
        raise VideoDecodeError(path, f"frame index {last} is out of range ({len(got)} decoded)")
    return torch.from_numpy(np.stack([got[i] for i in wanted]))


def scaled_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """(width, height) with the short side ~``short_side``, aspect kept, both even (x264)."""

    def even(x: float) -> int:
        return max(2, 2 * round(x / 2))

    scale = short_side / min(width, height)
    return even(width * scale), even(height * scale)


def iter_frames(path: str | os.PathLike, short_side: int | None = None) -> Iterator[np.ndarray]:
    """Every frame of ``path`` in order as ``[H, W, 3]`` uint8 RGB numpy arrays.

    ``short_side``: resize so the short side is this many pixels (aspect kept, even sizes);
    None keeps the native size. One swscale context is reused for all frames (building one per
    frame, as ``to_ndarray(width=, height=)`` does, costs more than the decode). A damaged or
    truncated file raises VideoDecodeError after the frames before the damage were yielded.
    """
    container, stream = _open(path)
    reformatter = VideoReformatter()
    with container:
        ctx = stream.codec_context
        if short_side is None:
            size = {}
        else:
            width, height = scaled_size(ctx.width, ctx.height, short_side)
            size = {"width": width, "height": height, "interpolation": Interpolation.BILINEAR}
        for frame in _decoded(path, container, stream):
            # threads=1: swscale's thread pool costs more than it saves on small outputs
            yield reformatter.reformat(frame, format="rgb24", threads=1, **size).to_ndarray()
