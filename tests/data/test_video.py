"""PyAV decoding of the real sample videos and of every kind of broken file."""

from __future__ import annotations

import av
import numpy as np
import pytest
import torch

from sstl.data.video import VideoDecodeError, iter_frames, probe, read_frames, scaled_size


def _all_frames(path) -> np.ndarray:
    """Independent reference: every frame decoded by PyAV in output order, RGB."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def test_probe_counts_exactly_the_decoded_frames(sample_videos):
    sizes = {"ucf101": {(320, 240), (340, 256)}, "hmdb51": {(340, 256), (306, 256)}}
    for name, (path, frames) in sample_videos.items():
        info = probe(path)
        assert info.num_frames == frames, name
        assert (info.width, info.height) in sizes[name.split("/")[0]], name
        assert info.fps == (30.0 if name.startswith("hmdb51") else 25.0), name


def test_raw_mpeg4_stream_has_no_timestamps_yet_counts(sample_videos):
    path, frames = sample_videos["ucf101/v_Basketball_g01_c02.mp4"]
    with av.open(str(path)) as container:
        assert container.format.name == "m4v"
        assert container.streams.video[0].frames == 0  # the container cannot say
    assert probe(path).num_frames == frames == 180


def test_file_with_audio_track_decodes_video_only(sample_videos):
    path, frames = sample_videos["ucf101/v_ApplyEyeMakeup_g01_c01.avi"]
    with av.open(str(path)) as container:
        assert [s.type for s in container.streams] == ["video", "audio"]
    assert probe(path).num_frames == frames == 164
    assert read_frames(path, [frames - 1]).shape == (1, 240, 320, 3)


@pytest.mark.parametrize(
    "name",
    [
        "ucf101/v_Shotput_g05_c02.avi",
        "ucf101/v_CliffDiving_g03_c01.mp4",
        "hmdb51/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4",
    ],
)
def test_read_frames_order_and_repeats_match_sequential_decode(sample_videos, name):
    path, frames = sample_videos[name]
    ref = _all_frames(path)
    assert len(ref) == frames
    indices = [frames - 1, 0, 5, 5, 17, 2, frames // 2, 0]
    out = read_frames(path, indices)
    assert out.dtype == torch.uint8 and out.shape == (len(indices), *ref.shape[1:])
    assert np.array_equal(out.numpy(), ref[indices])


def test_read_frames_out_of_range_names_the_path(sample_videos):
    path, frames = sample_videos["ucf101/v_Punch_g03_c01.avi"]
    with pytest.raises(VideoDecodeError, match="out of range") as err:
        read_frames(path, [0, frames])
    assert str(path) in str(err.value)
    with pytest.raises(VideoDecodeError, match="negative"):
        read_frames(path, [-1])


@pytest.mark.parametrize(
    "kind",
    ["zero_bytes", "truncated_avi", "truncated_m4v", "text_as_avi", "audio_only", "nonexistent"],
)
def test_broken_files_raise_decode_error_naming_the_path(broken_files, kind):
    path = broken_files[kind]
    for call in (lambda: probe(path), lambda: list(iter_frames(path, 64))):
        with pytest.raises(VideoDecodeError) as err:
            call()
        assert err.value.path == str(path) and str(path) in str(err.value)
        assert err.value.reason
    if kind.startswith("truncated"):  # frames before the cut decode; the damaged end raises
        with pytest.raises(VideoDecodeError, match="truncated"):
            probe(path)
    else:
        with pytest.raises(VideoDecodeError):
            read_frames(path, [0])


def test_iter_frames_resizes_short_side_keeping_aspect_even(sample_videos):
    path, frames = sample_videos[
        "hmdb51/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4"
    ]
    out = list(iter_frames(path, short_side=128))
    assert len(out) == frames
    assert out[0].shape == (128, 152, 3) and out[0].dtype == np.uint8  # 306x256 -> 153 -> 152
    native = list(iter_frames(path))
    assert native[0].shape == (256, 306, 3)
    assert np.array_equal(native[10], read_frames(path, [10])[0].numpy())
    # close to an antialiased torch resize of the native frame
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(native[10]).permute(2, 0, 1)[None].float(),
        size=(128, 152),
        mode="bilinear",
        antialias=True,
    )[0].permute(1, 2, 0)
    assert (ref - torch.from_numpy(out[10]).float()).abs().mean() < 4


def test_scaled_size_is_even_and_keeps_the_short_side():
    assert scaled_size(320, 240, 128) == (170, 128)
    assert scaled_size(240, 320, 128) == (128, 170)
    assert scaled_size(306, 256, 128) == (152, 128)
    assert all(v % 2 == 0 for v in scaled_size(1919, 1081, 113))
