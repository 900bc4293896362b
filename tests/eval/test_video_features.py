"""``sstl features`` on the real sample videos (AVI/Xvid with audio, raw m4v streams without
timestamps, re-encoded HMDB51 mp4; 306..340 x 240..256), under hostile names, beside broken
files."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from sstl.augment.spatial import center_crop_normalize
from sstl.cli import main
from sstl.config import ModelConfig
from sstl.data.clips import uniform_clips
from sstl.data.video import iter_frames
from sstl.eval.video_features import short_side_for, square, video_features
from sstl.models.sstl import SSTLModel
from sstl.models.weights import save_pretrained

TINY = ModelConfig(arch="r3d_tiny", width=4, proj_hidden=16, proj_dim=8)
CLIP_LEN, CROP, CLIPS = 8, 28, 3


def readme_frames(shared_dir: Path) -> dict[str, int]:
    """sample file -> decoded frame count, from the table in shared/videos/README.md."""
    rows = [r.strip().strip("|").split("|") for r in (shared_dir / "videos/README.md").open()]
    return {c[0].strip(): int(c[4]) for c in rows if len(c) == 5 and c[4].strip().isdigit()}


@pytest.fixture(scope="module")
def videos(shared_dir, tmp_path_factory) -> dict[str, tuple[Path, int | None]]:
    """Copies of the nine samples under hostile names, and three broken files:
    name -> (path, decoded frames or None for a broken file)."""
    root = tmp_path_factory.mktemp("my videos")
    out: dict[str, tuple[Path, int | None]] = {}
    for i, (name, frames) in enumerate(sorted(readme_frames(shared_dir).items())):
        stem = Path(name).stem
        hostile = f'{i} {stem} it\'s "{i}" !{Path(name).suffix}'  # spaces, quotes, '!'
        path = root / ("sub dir" if i % 2 else ".") / hostile
        path.parent.mkdir(exist_ok=True)
        shutil.copy(shared_dir / "videos" / name, path)
        out[name] = (path, frames)
    punch = (shared_dir / "videos/ucf101/v_Punch_g03_c01.avi").read_bytes()
    broken = {
        "cut off.avi": punch[: len(punch) // 3],
        "empty.mp4": b"",
        "notes.mp4": b"not a video at all\n" * 20,
    }
    for name, data in broken.items():
        (root / name).write_bytes(data)
        out[name] = (root / name, None)
    return out


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    """A tiny pretrained encoder whose run config trained on 8-frame clips at crop 28."""
    torch.manual_seed(7)
    path = tmp_path_factory.mktemp("weights") / "weights.pt"
    config = {"model": dataclasses.asdict(TINY), "temporal": {"clip_len": CLIP_LEN}}
    config["spatial"] = {"crop_size": CROP}
    save_pretrained(path, SSTLModel(TINY), config, {})
    return path


def test_features_of_real_videos_and_broken_ones(videos, weights, tmp_path, h):
    order = sorted(videos)
    out = tmp_path / "out dir" / "features.npz"
    args = [str(videos[n][0]) for n in order]
    proc = h.run_sstl("features", *args, "--weights", str(weights), "--out", str(out),
                      "--clips", str(CLIPS), "--batch-size", "4", "--workers", "2")  # fmt: skip
    # the broken files are named with the reason, the others are written, the exit code says so
    assert proc.returncode == 1, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("sstl features: 3 of 12 videos could not be decoded"), last
    for name in ("cut off.avi", "empty.mp4", "notes.mp4"):
        assert f"cannot decode video {videos[name][0]}" in proc.stderr, name
    assert "truncated" in last and "zero bytes" in last and "not a readable media file" in last
    assert "features (backbone)" in proc.stderr  # the progress bar

    z = np.load(out)  # no pickles: plain arrays and strings
    good = [n for n in order if videos[n][1] is not None]
    assert list(z["paths"]) == [str(videos[n][0]) for n in good]
    assert sorted(z["failed"]) == sorted(str(videos[n][0]) for n in order if videos[n][1] is None)
    assert list(z["num_frames"]) == [videos[n][1] for n in good]
    for n, starts in zip(good, z["clip_starts"], strict=True):
        assert list(starts) == [run[0] for run in uniform_clips(videos[n][1], CLIP_LEN, CLIPS)]
    assert z["clip_features"].shape == (9, CLIPS, 32) and z["video_features"].shape == (9, 32)
    assert np.isfinite(z["clip_features"]).all()
    np.testing.assert_allclose(z["video_features"], z["clip_features"].mean(1), rtol=1e-6)
    # different videos, different features; the clips of one video differ too
    assert len({f.tobytes() for f in z["video_features"]}) == 9
    assert not np.allclose(z["clip_features"][0, 0], z["clip_features"][0, -1])
    meta = json.loads(str(z["meta"]))
    assert meta["clip_len"] == CLIP_LEN and meta["crop_size"] == CROP  # the pretraining's
    assert meta["short_side"] == 32 and meta["layer"] == "backbone" and meta["clips"] == CLIPS


def test_the_clips_are_the_frames_evaluation_sees(videos, weights):
    """Each clip feature equals the model on the clip's frames resized to the short side and
    centre cropped by evaluation's own transform, for frames of every aspect ratio."""
    names = ["ucf101/v_Punch_g03_c01.avi", next(n for n in videos if n.startswith("hmdb51/BASE"))]
    paths = [videos[n][0] for n in names]
    got = video_features(weights, paths, clips=CLIPS, batch_size=2, workers=0, device="cpu")
    model = SSTLModel(TINY)
    model.load_state_dict(torch.load(weights, weights_only=True)["model"])
    model.eval()
    for row, (name, path) in enumerate(zip(names, paths, strict=True)):
        frames = np.stack(list(iter_frames(path, short_side_for(CROP))))  # (F, 32, W, 3)
        runs = uniform_clips(videos[name][1], CLIP_LEN, CLIPS)
        clips = torch.from_numpy(frames[[j for run in runs for j in run]])
        x = center_crop_normalize(clips.view(CLIPS, CLIP_LEN, *clips.shape[1:]), CROP)
        with torch.no_grad():
            want = model.backbone(x).numpy()  # (K, 32)
        np.testing.assert_allclose(got["clip_features"][row], want, rtol=1e-4, atol=1e-5)


def test_square_keeps_evaluations_centre_crop():
    for h, w in [(32, 43), (32, 38), (45, 32), (32, 32), (33, 40)]:
        frames = torch.arange(h * w * 3, dtype=torch.float32).reshape(1, h, w, 3).numpy()
        s = min(h, w)
        direct = frames[:, round((h - CROP) / 2) :, round((w - CROP) / 2) :][:, :CROP, :CROP]
        sq = square(frames, CROP)
        assert sq.shape == (1, s, s, 3)
        inner = round((s - CROP) / 2)
        np.testing.assert_array_equal(sq[:, inner : inner + CROP, inner : inner + CROP], direct)


def test_batch_size_and_workers_do_not_change_features(videos, weights):
    paths = [videos[n][0] for n in sorted(videos) if videos[n][1] is not None][:5]
    a = video_features(weights, paths, clips=2, batch_size=1, workers=0, device="cpu")
    b = video_features(weights, paths, clips=2, batch_size=3, workers=2, device="cpu")
    assert a["paths"] == b["paths"]
    np.testing.assert_allclose(a["clip_features"], b["clip_features"], rtol=1e-5, atol=1e-6)


def test_projection_layer_and_clip_settings(videos, weights):
    path = videos["ucf101/v_CliffDiving_g03_c01.mp4"][0]  # raw m4v stream, no timestamps
    got = video_features(
        weights, [path], layer="projection", clips=4, clip_len=4, batch_size=1, workers=0
    )
    assert got["clip_features"].shape == (1, 4, 8)  # proj_dim
    assert got["meta"]["clip_len"] == 4 and got["meta"]["layer"] == "projection"


def test_nothing_decodes_nothing_is_written(videos, weights, tmp_path, h):
    out = tmp_path / "features.npz"
    broken = [str(videos[n][0]) for n in ("empty.mp4", "notes.mp4")]
    proc = h.run_sstl("features", *broken, "--weights", str(weights), "--out", str(out))
    assert proc.returncode == 1
    assert "2 of 2 videos could not be decoded" in proc.stderr and "nothing was written" in (
        proc.stderr
    )
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_a_file_that_is_not_pretrained_weights_is_named(videos, tmp_path, capsys):
    other = tmp_path / "finetuned.pt"
    torch.save({"state_dict": {}}, other)
    video = str(videos["ucf101/v_Punch_g03_c01.avi"][0])
    for weights, message in ((other, "is not a pretrained weights file"),
                             (tmp_path / "nope.pt", "run `sstl pretrain` first")):  # fmt: skip
        argv = ["features", video, "--weights", str(weights), "--out", str(tmp_path / "f.npz")]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert message in err and str(weights) in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--out", "features.txt"], "must end in .npz"),
        (["--clips", "0"], "--clips = 0 is not allowed"),
        (["--folder"], "is a folder: give its video files"),
    ],
)
def test_usage_errors_name_the_value(args, message, videos, weights, tmp_path, capsys):
    video = str(videos["ucf101/v_Punch_g03_c01.avi"][0])
    if args == ["--folder"]:
        args, video = [], str(tmp_path)
    base = ["features", video, "--weights", str(weights), "--out", str(tmp_path / "f.npz")]
    assert main([*base, *args]) == 2
    assert message in capsys.readouterr().err
