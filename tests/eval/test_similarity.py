"""The pure statistics behind Figures 1 and 2, on constructed features."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sstl.config import AnalyseJob, load_section, to_dict
from sstl.data.clips import uniform_clips
from sstl.eval import similarity as S
from sstl.eval import similarity_stats as stats
from sstl.eval.similarity_stats import (
    distance_curve,
    intra_inter,
    n_drop_for,
    paired_cosine,
    relative_centres,
    strength_curve,
    summarize,
)


def test_paired_cosine_identical_orthogonal_opposite():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 8))
    assert np.allclose(paired_cosine(a, a), 1.0)
    assert np.allclose(paired_cosine(a, 3.5 * a), 1.0)  # scale-free
    assert np.allclose(paired_cosine(a, -a), -1.0)
    e = np.eye(4)
    assert np.allclose(paired_cosine(e, np.roll(e, 1, axis=0)), 0.0)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        paired_cosine(a, a[:3])


def test_summarize():
    s = summarize([1.0, 2.0, 3.0, 4.0])
    assert s["mean"] == 2.5 and s["n"] == 4
    assert s["std"] == pytest.approx(np.std([1, 2, 3, 4], ddof=1))
    assert s["sem"] == pytest.approx(s["std"] / 2)
    assert summarize([7.0]) == {"mean": 7.0, "std": None, "sem": None, "n": 1}
    assert summarize([])["mean"] is None


def test_strength_curve_and_n_drop():
    curve = strength_curve({12: [0.5, 0.7], 0: [1.0, 1.0], 4: [0.9, 0.8]})
    assert curve["strengths"] == [0, 4, 12]
    assert curve["n_drop"] == [0, 1, 4]  # e = 12 drops 4, the paper's default
    assert curve["mean"] == pytest.approx([1.0, 0.85, 0.6])
    assert curve["std"][0] == 0.0 and curve["n"] == [2, 2, 2]
    with pytest.raises(ValueError, match="strength -1"):
        n_drop_for(-1)


def test_intra_inter_identical_within_orthogonal_across():
    # 4 videos, 3 identical clips each, videos mutually orthogonal
    feats = np.repeat(np.eye(4)[:, None, :] * 2.0, 3, axis=1)  # [V=4, K=3, D=4]
    out = intra_inter(feats, np.random.default_rng(0))
    assert out["intra"]["mean"] == pytest.approx(1.0) and out["intra"]["n"] == 4 * 3
    assert out["inter"]["mean"] == pytest.approx(0.0) and out["inter"]["n"] == 66 - 12
    assert len(out["intra"]["samples"]) == 12
    capped = intra_inter(feats, np.random.default_rng(0), cap=5)
    assert len(capped["inter"]["samples"]) == 5 and capped["inter"]["n"] == 54
    with pytest.raises(ValueError, match="V>=2, K>=2"):
        intra_inter(feats[:1], np.random.default_rng(0))


def test_intra_inter_sampled_pairs(monkeypatch):
    monkeypatch.setattr(stats, "MAX_INTER_FULL", 4)  # force the sampling branch on a small input
    feats = np.repeat(np.eye(5)[:, None, :], 2, axis=1)
    out = intra_inter(feats, np.random.default_rng(1), max_pairs=1000)
    assert out["inter"]["mean"] == pytest.approx(0.0)
    assert 700 < out["inter"]["n"] < 1000  # same-video draws are discarded
    assert out["intra"]["mean"] == pytest.approx(1.0)


def test_relative_centres():
    clips = uniform_clips(48, 16, 5)
    centres = relative_centres(clips, 48)
    assert centres[0] == pytest.approx(7.5 / 48) and centres[-1] == pytest.approx(39.5 / 48)
    assert np.allclose(np.diff(centres), 8 / 48)  # uniformly spaced
    short = relative_centres(uniform_clips(10, 16, 3), 10)  # last frame repeated
    assert np.allclose(short, 4.5 / 10)


def angle_features(positions: np.ndarray) -> np.ndarray:
    """Unit 2-d features whose pairwise cosine is cos(pi/2 * |p_i - p_j|)."""
    angle = np.pi / 2 * positions
    return np.stack([np.cos(angle), np.sin(angle)], axis=-1)


def test_distance_curve_binning():
    positions = np.tile([0.0, 0.2, 0.4, 0.6, 0.8], (5, 1))  # [V=5, K=5]
    curve = distance_curve(angle_features(positions), positions, bins=4)
    assert curve["edges"] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8])
    assert curve["count"] == [20, 15, 10, 5]  # 4, 3, 2, 1 pairs per video at distance .2...8
    assert curve["distance"] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert curve["mean"] == pytest.approx([math.cos(math.pi / 2 * d) for d in (0.2, 0.4, 0.6, 0.8)])
    assert curve["low"] == pytest.approx(curve["mean"])  # identical values: zero-width band
    assert curve["high"] == pytest.approx(curve["mean"])


def test_distance_curve_confidence_interval_and_empty_bins():
    rng = np.random.default_rng(0)
    positions = np.tile([0.0, 0.1, 0.9], (200, 1))  # distances 0.1, 0.8, 0.9: bins 3-6 empty
    feats = angle_features(positions) + 0.2 * rng.normal(size=(200, 3, 2))
    curve = distance_curve(feats, positions, bins=9)
    assert curve["count"][0] == 200 and curve["count"][3] == 0
    assert curve["mean"][3] is None and curve["low"][3] is None and curve["distance"][3] is None
    m, sem = curve["mean"][0], curve["sem"][0]
    assert curve["low"][0] == pytest.approx(m - 1.96 * sem)
    assert curve["high"][0] == pytest.approx(m + 1.96 * sem)
    assert 0 < sem < 0.05
    assert curve["mean"][0] > curve["mean"][-1]  # near clips are more alike than far ones
    small = distance_curve(feats[:20], positions[:20], bins=9)
    assert small["high"][0] - small["low"][0] > curve["high"][0] - curve["low"][0]
    with pytest.raises(ValueError, match="positions"):
        distance_curve(feats, positions[:, :2])


@pytest.fixture(scope="module")
def tiny_store(tmp_path_factory):
    """Six real test videos (3 motion classes), encoded, stored at short side 32, a manifest."""
    import pandas as pd

    from sstl.config import StoreConfig
    from sstl.data.clips import MANIFEST_COLUMNS
    from sstl.data.store import write_store
    from sstl.data.synthetic import write_video
    from sstl.data.synthetic_render import render_video, sample_appearance

    root = tmp_path_factory.mktemp("tiny")
    rng = np.random.default_rng(0)
    rows = []
    for i, motion in enumerate(["MoveRight", "MoveUp", "MoveDown"] * 2):
        src = root / "videos" / f"v{i}.avi"
        src.parent.mkdir(exist_ok=True)
        write_video(src, render_video(motion, sample_appearance(rng), 24, 32, rng), fps=25)
        info = write_store(src, root / "store" / f"v{i}.mp4", StoreConfig(short_side=32, gop=8))
        row = dict.fromkeys(MANIFEST_COLUMNS, "")
        row.update(
            id=f"v{i}",
            path=f"v{i}.mp4",
            label=i % 3,
            class_name=motion,
            split="test",
            frames=info.num_frames,
            fps=25.0,
            width=32,
            height=32,
            status="ok",
        )
        rows.append(row)
    pd.DataFrame(rows, columns=MANIFEST_COLUMNS).to_csv(root / "manifest.csv", index=False)
    return root


CFG = {
    "analysis": {
        "videos": 5,
        "strengths": [0, 6],
        "clips_per_video": 3,
        "clip_len": 8,
        "crop_size": 28,
        "device": "cpu",
    },
    "model": {"arch": "r3d_tiny", "width": 4, "proj_hidden": 16, "proj_dim": 8},
    "rate_range": [1.0, 1.25],
    "seed": 0,
}
JOB = load_section(AnalyseJob, CFG)


def test_analyse_cli_end_to_end(tiny_store):
    """``sstl analyse`` (its CLI function, in process) on real stored videos, scratch model."""
    out = tiny_store / "runs/analysis/scratch/tiny/similarity.json"
    argv = [
        "--cfg",
        json.dumps(CFG),
        "--manifest",
        str(tiny_store / "manifest.csv"),
        "--store",
        str(tiny_store / "store"),
        "--weights",
        "scratch",
        "--experiment",
        "scratch",
        "--dataset",
        "tiny",
        "--out",
        str(out),
    ]
    assert S.cli(argv) == 0
    result = json.loads(out.read_text())
    assert result["experiment"] == "scratch" and result["dataset"] == "tiny"
    assert result["num_videos"] == 5 and result["weights_sha256"] is None
    assert result["config"] == json.loads(json.dumps(to_dict(JOB))) and "sha" in result["git"]
    f1 = result["figure1"]
    assert f1["strengths"] == [0, 6] and f1["n_drop"] == [0, 2] and f1["n"] == [5, 5]
    assert f1["mean"][0] == pytest.approx(1.0, abs=1e-5)  # e = 0: both views are the same frames
    assert -1.0 <= f1["mean"][1] <= 1.0
    f2 = result["figure2"]
    assert f2["intra"]["n"] == 5 * 3 and f2["inter"]["n"] == (15 * 14) // 2 - 15
    assert sum(f2["distance"]["count"]) == 15
    # same seed, same numbers
    again = S.analyse(JOB, tiny_store / "manifest.csv", tiny_store / "store", "scratch")
    assert again["figure2"]["intra"]["samples"] == pytest.approx(f2["intra"]["samples"])
    assert again["figure1"]["mean"] == pytest.approx(f1["mean"])


def test_analyse_with_weights_file(tiny_store, tmp_path):
    import hashlib

    from sstl.models.sstl import SSTLModel
    from sstl.models.weights import save_pretrained

    weights = tmp_path / "weights.pt"
    save_pretrained(weights, SSTLModel(JOB.model), CFG, {})
    result = S.analyse(JOB, tiny_store / "manifest.csv", tiny_store / "store", str(weights))
    assert result["weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert len(result["figure2"]["intra"]["samples"]) == 15


def test_analyse_settings_are_checked_before_any_work(tiny_store, tmp_path, capsys):
    from sstl.cli import main

    base = ["--manifest", str(tiny_store / "manifest.csv"), "--store", str(tiny_store / "store")]
    base += ["--experiment", "x", "--dataset", "tiny", "--out", str(tmp_path / "s.json")]
    for cfg, weights, message in (
        ({"analyse": {}}, "scratch", "unknown key analyse"),
        ({"analysis": {"videos": 1}}, "scratch", "analysis.videos = 1 is not allowed"),
        (CFG, str(tmp_path / "none.pt"), "is neither a pretraining weights file"),
    ):
        code = main(["analyse", "--cfg", json.dumps(cfg), "--weights", weights, *base])
        assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "s.json").exists()
