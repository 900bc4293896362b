"""The frame store: exact random access for both codecs, one file per video, sizes."""

from __future__ import annotations

import pickle
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from sstl.config import StoreConfig
from sstl.data.store import StoreReader, write_store
from sstl.data.video import VideoDecodeError, read_frames

CODECS = ("h264", "jpeg")
# store.py silences torchvision's JPEG deprecation notice; pytest re-enables warnings per test
pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")


def _decode_store_sequentially(path) -> np.ndarray:
    """Every frame of an h264 store file, decoded from the start by plain PyAV."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _random_index_sets(n: int, rng: np.random.Generator) -> list[list[int]]:
    sets = [[0], [n - 1], list(range(n)), [n - 1, 0, 0, n // 2]]
    for _ in range(12):
        start = int(rng.integers(0, n))
        sets.append(list(range(start, min(n, start + 28))))  # a training window
        sets.append(rng.integers(0, n, size=int(rng.integers(1, 40))).tolist())  # scattered
    return sets


def test_h264_random_access_equals_sequential_decode(stores, sample_videos):
    rng = np.random.default_rng(0)
    for name, (_, dst) in stores["h264"].items():
        ref = _decode_store_sequentially(dst)
        assert len(ref) == sample_videos[name][1]
        reader = StoreReader(dst)
        assert reader.num_frames == len(ref)
        for indices in _random_index_sets(len(ref), rng):
            out = reader.read(indices)
            assert out.dtype == torch.uint8 and out.shape == (len(indices), *ref.shape[1:])
            assert np.array_equal(out.numpy(), ref[indices]), (name, indices[:8])


@pytest.mark.parametrize("codec", CODECS)
def test_store_is_close_to_the_resized_source(stores, sample_videos, codec):
    for name, (src, dst) in stores[codec].items():
        n = sample_videos[name][1]
        indices = [0, n // 3, n - 1]
        got = StoreReader(dst).read(indices).permute(0, 3, 1, 2).float()
        assert got.shape[2] == 128 and got.shape[3] % 2 == 0
        ref = read_frames(src, indices).permute(0, 3, 1, 2).float()
        ref = torch.nn.functional.interpolate(
            ref, size=got.shape[2:], mode="bilinear", antialias=True
        )
        assert (got - ref).abs().mean() < 8, name


def test_jpeg_store_reads_exactly_the_frames_written(stores):
    rng = np.random.default_rng(1)
    for _, dst in stores["jpeg"].values():
        reader = StoreReader(dst)
        full = reader.read(range(reader.num_frames))
        for indices in _random_index_sets(reader.num_frames, rng):
            assert torch.equal(reader.read(indices), full[indices])


@pytest.mark.parametrize("codec", CODECS)
def test_one_file_per_video_with_metadata(tmp_path, sample_videos, codec):
    src, frames = sample_videos["ucf101/v_Punch_g03_c01.avi"]
    cfg = StoreConfig(codec=codec, short_side=64, gop=8)
    info = write_store(src, tmp_path / f"punch.{codec}", cfg, meta={"source_sha256": "abc"})
    assert [p.name for p in tmp_path.iterdir()] == [f"punch.{codec}"]  # no temp files left
    # 320x240 -> 85.3x64 -> even: 86x64
    assert (info.num_frames, info.width, info.height, info.fps) == (frames, 86, 64, 25.0)
    assert info.size == (tmp_path / f"punch.{codec}").stat().st_size
    reader = StoreReader(tmp_path / f"punch.{codec}")  # type detected from the header
    assert (reader.num_frames, reader.width, reader.height) == (frames, 86, 64)
    assert reader.fps == 25.0 and reader.meta == {"source_sha256": "abc"}
    assert reader.config["codec"] == codec and reader.config["gop"] == 8


def test_size_ratios(stores, sample_videos):
    src = sum(s.stat().st_size for s, _ in stores["h264"].values())
    h264 = sum(d.stat().st_size for _, d in stores["h264"].values())
    jpeg = sum(d.stat().st_size for _, d in stores["jpeg"].values())
    raw = sum(sample_videos[n][1] * 128 * 170 * 3 for n in stores["h264"])
    assert 0.05 < h264 / src < 0.5  # measured 0.23x on all UCF101 samples
    assert 3 * h264 < jpeg < raw / 4


def test_reader_pickles_without_handles_and_reopens(stores):
    _, dst = stores["h264"]["ucf101/v_Basketball_g01_c02.mp4"]
    reader = StoreReader(dst)
    before = reader.read([3, 40])
    clone = pickle.loads(pickle.dumps(reader))
    assert clone._handle is None
    assert torch.equal(clone.read([3, 40]), before)


def test_bad_reads_and_sources(tmp_path, stores, broken_files):
    _, dst = stores["jpeg"]["ucf101/v_ApplyEyeMakeup_g01_c01.avi"]
    with pytest.raises(IndexError, match=r"\[0, 164\)"):
        StoreReader(dst).read([0, 164])
    for kind in ("truncated_avi", "audio_only", "zero_bytes"):
        with pytest.raises(VideoDecodeError, match=str(broken_files[kind])):
            write_store(broken_files[kind], tmp_path / "x.mp4", StoreConfig())
        assert list(tmp_path.iterdir()) == []  # nothing half-written remains
    with pytest.raises(VideoDecodeError):
        StoreReader(tmp_path / "absent.mp4").read([0])
    for codec in CODECS:  # a store file cut in half fails loudly, never silently
        _, dst = stores[codec]["ucf101/v_ApplyEyeMakeup_g01_c01.avi"]
        cut = tmp_path / f"cut_{codec}"
        cut.write_bytes(dst.read_bytes()[: dst.stat().st_size // 2])
        with pytest.raises(VideoDecodeError, match="cut_"):
            StoreReader(cut).read([0, 150])


def test_ntsc_frame_rate_keeps_frame_identity(tmp_path):
    """29.97 fps (30000/1001): the mp4 muxer rescales the time base; indices must survive."""
    src = tmp_path / "ntsc.mp4"
    rng = np.random.default_rng(0)
    with av.open(str(src), "w") as out:
        stream = out.add_stream("mpeg4", rate=Fraction(30000, 1001))
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(40):  # each frame a distinct flat grey level plus mild noise
            img = np.clip(i * 6 + rng.integers(0, 8, (64, 96, 3)), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))
    info = write_store(src, tmp_path / "ntsc_store.mp4", StoreConfig(short_side=32, gop=4))
    assert info.num_frames == 40 and info.fps == pytest.approx(29.97, abs=0.01)
    reader = StoreReader(tmp_path / "ntsc_store.mp4")
    ref = _decode_store_sequentially(tmp_path / "ntsc_store.mp4")
    indices = [39, 0, 17, 18, 5, 33, 33]
    assert np.array_equal(reader.read(indices).numpy(), ref[indices])
    means = reader.read(range(40)).float().mean(dim=(1, 2, 3))
    assert (means.diff() > 0).all()  # frames come back in their true order
