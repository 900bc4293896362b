"""Figures render from small inputs, with known pixel sizes, and survive missing inputs."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sstl.report import figures as F


def check_png(path, size: tuple[int, int]) -> np.ndarray:
    assert path.is_file() and path.stat().st_size > 5000
    with Image.open(path) as img:
        assert img.format == "PNG" and img.size == size
        pixels = np.asarray(img.convert("L"))
    assert pixels.std() > 5  # not a blank canvas
    return pixels


def test_figure1_and_2(tmp_path, similarity):
    results = {"SSTL": similarity(0, 0.2), "SSTL (w/o temp)": similarity(1, 0.8), "Random": None}
    full = check_png(F.figure1(results, tmp_path / "f1.png", "synthetic"), (800, 500))
    check_png(F.figure2(results, tmp_path / "f2.png", "synthetic"), (1300, 500))
    empty = check_png(F.figure1({"SSTL": None}, tmp_path / "f1_none.png", "synthetic"), (800, 500))
    check_png(F.figure2({"SSTL": None}, tmp_path / "f2_none.png", "synthetic"), (1300, 500))
    assert (full < 128).sum() > (empty < 128).sum()  # lines and ticks drawn only with data


def test_figure4_with_missing_bar(tmp_path):
    bars = [
        {"batch": 64, "dim": 128, "top1": 55.0, "reason": None},
        {"batch": 64, "dim": 512, "top1": None, "reason": "not run: x"},
        {"batch": 256, "dim": 128, "top1": 60.2, "reason": None},
    ]
    check_png(F.figure4(bars, tmp_path / "f4.png", "synthetic"), (800, 500))
    check_png(F.figure4([], tmp_path / "f4_none.png", "synthetic"), (800, 500))


def test_figure4_draws_the_interval_over_seeds(tmp_path):
    bars = [{"batch": 8, "dim": d, "top1": 40.0 + d / 32, "reason": None} for d in (32, 64)]
    plain = check_png(F.figure4(bars, tmp_path / "plain.png", "synthetic"), (800, 500))
    seeded = [{**b, "ci95": 6.0} for b in bars]
    with_ci = check_png(F.figure4(seeded, tmp_path / "ci.png", "synthetic"), (800, 500))
    # the error bars and their "±6.0" labels are dark strokes the plain figure lacks
    assert (with_ci < 60).sum() > (plain < 60).sum() + 200


def test_figure5(tmp_path, per_class):
    with_t = per_class([8, 7, 6, 5, 4, 3] * 4)  # 24 classes: the figure grows to fit them
    without = per_class([4, 4, 6, 6, 2, 3] * 4)
    height = round(F.figure5_height(24) * F.DPI)
    assert height > int(F.figure5_height(0) * F.DPI)
    check_png(F.figure5(with_t, without, tmp_path / "f5.png", "synthetic"), (1000, height))
    check_png(
        F.figure5(None, without, tmp_path / "f5_none.png", "synthetic", "with_temp: missing"),
        (1000, int(F.figure5_height(0) * F.DPI)),
    )


def test_per_class_gain(per_class):
    gain = F.per_class_gain(per_class([8, 2, 4], total=8), per_class([4, 4, 4], total=8))
    assert list(gain["class_name"]) == ["Class0", "Class2", "Class1"]
    assert list(gain["gain"]) == [50.0, 0.0, -25.0]
    with pytest.raises(ValueError, match="different classes"):
        F.per_class_gain(per_class([1, 2, 3]), per_class([1, 2]))


def test_classes_without_test_videos_are_not_drawn(per_class):
    with_t, without = per_class([8, 2, 0, 4]), per_class([4, 4, 0, 4])
    for table in (with_t, without):
        table.loc[2, "videos"] = 0  # no test video of Class2: no accuracy to compare
    gain = F.per_class_gain(with_t, without)  # before: Class2 drawn as a gain of 0
    assert list(gain["class_name"]) == ["Class0", "Class3", "Class1"]
