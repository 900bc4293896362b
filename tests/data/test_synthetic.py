"""The synthetic dataset: UCF101 layout, real decodable videos, determinism, motion-only classes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter

import av
import numpy as np
import pytest

from sstl.config import ConfigError, SyntheticConfig
from sstl.data import synthetic, synthetic_render

NAME = re.compile(r"^([A-Za-z]+)/v_\1_g(\d\d)_c(\d\d)\.avi$")


def _decode(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _lines(path) -> list[str]:
    raw = path.read_bytes().decode()
    assert raw.endswith("\r\n") and raw.count("\r\n") == raw.count("\n"), f"{path} is not CRLF"
    return raw.split("\r\n")[:-1]


def _nearest_centroid(x_tr, y_tr, x_te, y_te) -> float:
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr, x_te = (x_tr - mu) / sd, (x_te - mu) / sd
    cents = np.stack([x_tr[y_tr == c].mean(0) for c in np.unique(y_tr)])
    pred = ((x_te[:, None] - cents[None]) ** 2).sum(-1).argmin(1)
    return float((pred == y_te).mean())


def _motion_features(clip: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Centroid velocity, speed, curl and area trend of the changed pixels of ``[T, H, W, 3]``."""
    t, h, w, _ = clip.shape
    mask = (np.abs(clip.astype(np.float32) - background).sum(-1) > 60).astype(np.float32)
    # Circular means: the scene wraps around, so a plain centroid would jump at the borders.
    zx = (mask * np.exp(2j * np.pi * (np.arange(w) + 0.5) / w)[None, None, :]).sum((1, 2))
    zy = (mask * np.exp(2j * np.pi * (np.arange(h) + 0.5) / h)[None, :, None]).sum((1, 2))
    vx = np.diff(np.unwrap(np.angle(zx))) * w / (2 * np.pi)
    vy = np.diff(np.unwrap(np.angle(zy))) * h / (2 * np.pi)
    slope = np.polyfit(np.arange(t), np.log(mask.sum((1, 2)) + 1), 1)[0]
    curl = np.mean(vx[:-1] * vy[1:] - vy[:-1] * vx[1:])
    return np.array([vx.mean(), vy.mean(), np.abs(vx).mean(), np.abs(vy).mean(), slope, curl])


def test_motions_are_named_and_distinct():
    names = [m.name for m in synthetic_render.MOTIONS]
    assert len(names) >= 12 and len(set(names)) == len(names)
    assert all(re.fullmatch(r"[A-Z][A-Za-z]+", n) for n in names), names
    assert synthetic_render.motion_by_name("MoveRight") is synthetic_render.MOTIONS[0]
    with pytest.raises(ValueError, match="NoSuchMotion"):
        synthetic_render.motion_by_name("NoSuchMotion")


def test_layout_matches_ucf101(small_dataset, small_cfg):
    out, summary = small_dataset
    classes = _lines(out / "splits" / "classInd.txt")
    names = [m.name for m in synthetic_render.MOTIONS[: small_cfg.classes]]
    assert classes == [f"{i + 1} {n}" for i, n in enumerate(names)]
    groups: dict[str, set[str]] = {"train": set(), "test": set()}
    listed = set()
    for split, fname in (("train", "trainlist01.txt"), ("test", "testlist01.txt")):
        lines = _lines(out / "splits" / fname)
        per_class = small_cfg.train_per_class if split == "train" else small_cfg.test_per_class
        assert len(lines) == per_class * small_cfg.classes
        for line in lines:
            rel, *label = line.split(" ")
            match = NAME.match(rel)
            assert match, f"{rel!r} does not follow UCF101 naming"
            if split == "train":
                assert label == [str(names.index(match[1]) + 1)]
            else:
                assert label == []
            assert (out / "videos" / rel).is_file()
            groups[split].add(match[2])
            listed.add(rel)
    assert groups["train"].isdisjoint(groups["test"])
    assert sorted(groups["test"]) == ["01", "02"]  # test groups come first, like UCF101
    on_disk = {p.relative_to(out / "videos").as_posix() for p in out.glob("videos/*/*")}
    assert on_disk == listed  # no leftover temporary files
    assert json.loads((out / "synthetic.json").read_text()) == summary
    assert summary["counts"] == {"train": 6, "test": 15}
    assert summary["video_bytes"] == sum((out / "videos" / r).stat().st_size for r in listed)


def test_videos_decode_with_faithful_colours(small_dataset, small_cfg):
    out, _ = small_dataset
    for rel in ("MoveRight/v_MoveRight_g01_c02.avi", "MoveDown/v_MoveDown_g03_c02.avi"):
        path = out / "videos" / rel
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            assert container.format.name == "avi" and stream.codec_context.name == "mpeg4"
            assert stream.average_rate == small_cfg.fps
        frames = _decode(path)
        assert frames.shape == (small_cfg.frames, small_cfg.size, small_cfg.size, 3)
        # Re-render from the documented seed: the encoded file must keep the colours.
        c = [m.name for m in synthetic_render.MOTIONS].index(rel.split("/")[0])
        g, k = (int(x) for x in NAME.match(rel).groups()[1:])
        rng = np.random.default_rng([small_cfg.seed, c, (g - 1) * 4 + k - 1])
        app = synthetic_render.sample_appearance(rng)
        ref = synthetic_render.render_video(
            synthetic_render.MOTIONS[c], app, small_cfg.frames, 32, rng
        )
        err = np.abs(frames.astype(np.int16) - ref).mean()
        assert err < 6, f"{rel}: mean abs error {err:.1f} vs the rendered frames"


def test_same_seed_identical_files_other_seed_different(tmp_path, small_dataset, small_cfg):
    first, _ = small_dataset
    again = tmp_path / "again"
    synthetic.generate(again, small_cfg, progress=False)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for rel in files:
        assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel
    other = tmp_path / "other"
    cfg = SyntheticConfig(**{**small_cfg.__dict__, "seed": small_cfg.seed + 1})
    synthetic.generate(other, cfg, progress=False)
    for rel in (first / "splits" / "trainlist01.txt").read_text().split():
        if rel.endswith(".avi"):
            a, b = _decode(first / "videos" / rel), _decode(other / "videos" / rel)
            assert a.shape == b.shape and not np.array_equal(a, b), rel


def test_subset_regenerates_identically(tmp_path, small_dataset, small_cfg):
    first, _ = small_dataset
    cfg = SyntheticConfig(**{**small_cfg.__dict__, "classes": 2, "train_per_class": 1})
    synthetic.generate(tmp_path, cfg, progress=False)
    videos = list(tmp_path.glob("videos/*/*.avi"))
    assert len(videos) == 2 * (1 + small_cfg.test_per_class)
    for path in videos:
        rel = path.relative_to(tmp_path)
        assert path.read_bytes() == (first / rel).read_bytes(), rel


def test_one_frame_cannot_tell_the_class(rendered):
    videos, labels = rendered
    n, chance = len(labels), 1 / 8
    frame = videos[np.arange(n), np.random.default_rng(0).integers(0, 48, n)]  # [N, H, W, 3]
    train = np.arange(n) % 2 == 0
    q = (frame // 64).astype(np.int64)
    bins = q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]
    hist = np.stack([np.bincount(b.ravel(), minlength=64) / b.size for b in bins])
    pixels = frame[:, ::4, ::4].reshape(n, -1).astype(np.float32)
    acc_hist = _nearest_centroid(hist[train], labels[train], hist[~train], labels[~train])
    acc_pix = _nearest_centroid(pixels[train], labels[train], pixels[~train], labels[~train])
    dist = ((pixels[~train][:, None] - pixels[train][None]) ** 2).sum(-1)
    acc_1nn = float((labels[train][dist.argmin(1)] == labels[~train]).mean())
    for name, acc in (("histogram", acc_hist), ("pixels", acc_pix), ("1-NN", acc_1nn)):
        assert acc < 2 * chance, f"single-frame {name} classifier scores {acc:.2f}"


def test_motion_tells_the_class(rendered):
    videos, labels = rendered
    n, chance = len(labels), 1 / 8
    starts = np.random.default_rng(1).integers(0, 48 - 16 + 1, n)
    feats = np.stack(
        [
            _motion_features(videos[i, s : s + 16], np.median(videos[i], axis=0))
            for i, s in enumerate(starts)
        ]
    )
    train = np.arange(n) % 2 == 0
    acc = _nearest_centroid(feats[train], labels[train], feats[~train], labels[~train])
    assert acc > 3 * chance, f"16-frame motion features score only {acc:.2f}"


def test_every_16_frame_window_shows_motion():
    for c, motion in enumerate(synthetic_render.MOTIONS):
        for i in range(2):
            rng = np.random.default_rng([7, c, i])
            app = synthetic_render.sample_appearance(rng)
            video = synthetic_render.render_video(motion, app, 48, 64, rng).astype(np.int16)
            for start in range(48 - 16 + 1):
                window = video[start : start + 16]
                changed = (np.abs(window - window[0]).sum(-1) > 40).sum((1, 2))  # [16] pixels
                assert changed.max() >= 20, f"{motion.name} #{i} still in window @{start}"
                # Periodic motions may come back to the start pose at the window's end.
                if motion.kind not in ("oscillate", "pulse"):
                    assert changed[-1] >= 20, f"{motion.name} #{i} same ends @{start}"


def test_wraparound_keeps_the_object_whole():
    rng = np.random.default_rng([0, 0, 0])
    app = synthetic_render.sample_appearance(rng)
    video = synthetic_render.render_video("MoveRightFast", app, 48, 64, rng)  # crosses a border
    bg = synthetic_render._background(app.background, 64)
    area = (np.abs(video.astype(np.float32) - bg).sum(-1) > 40).sum((1, 2))  # [T]
    assert area.min() > 0.8 * area.max(), f"object area varies {area.min()}..{area.max()}"


def test_palette_is_small_and_shared():
    cfg = SyntheticConfig()
    looks = []
    for _, c, g, k in synthetic.plan(cfg):
        app = synthetic_render.sample_appearance(
            np.random.default_rng([cfg.seed, c, (g - 1) * 4 + k - 1])
        )
        looks.append((app.shape, app.colour, app.texture, app.background))
    counts = Counter(looks)
    shared = sum(n for n in counts.values() if n > 1) / len(looks)
    assert shared > 0.5, f"only {shared:.0%} of videos share their look with another"


def test_bad_config_names_the_value(tmp_path):
    with pytest.raises(ConfigError, match="classes = 99"):
        synthetic.generate(tmp_path, SyntheticConfig(classes=99), progress=False)
    with pytest.raises(ConfigError, match="size = 33"):
        synthetic.generate(tmp_path, SyntheticConfig(size=33), progress=False)


def test_cli_writes_the_dataset(tmp_path):
    cfg = '{"classes": 2, "train_per_class": 1, "test_per_class": 1, "frames": 16, "size": 32}'
    cmd = [sys.executable, "-m", "sstl.cli", "synthetic", "--cfg", cfg, "--out", str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "synthetic.json").read_text())
    assert summary["counts"] == {"train": 2, "test": 2}
    assert "resolved config" in done.stderr
    bad = subprocess.run(
        [*cmd[:5], '{"classes": 99}', "--out", str(tmp_path / "bad")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode != 0 and "classes = 99" in bad.stderr


def test_default_config_generates_quickly(tmp_path):
    start = time.perf_counter()
    summary = synthetic.generate(tmp_path, SyntheticConfig(), progress=False)
    seconds = time.perf_counter() - start
    n = summary["counts"]["train"] + summary["counts"]["test"]
    kb = summary["video_bytes"] / n / 1e3
    print(f"default synthetic: {n} videos, {kb:.1f} kB each, {seconds:.1f} s")
    assert n == 8 * (24 + 8) and seconds < 30
