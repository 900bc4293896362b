"""5-clip video-level evaluation: aggregation, top-k, per-class, confusion, and the CLI."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from sstl.augment.spatial import KINETICS_MEAN, KINETICS_STD
from sstl.config import EvalConfig, FinetuneConfig, ModelConfig, to_dict
from sstl.data.clips import ClipDataset, collate, load_manifest
from sstl.eval.classify import evaluate_videos, video_metrics
from sstl.models.sstl import Finetuner
from sstl.models.weights import save_finetuned

C = 6  # classes: top-5 leaves one out


class CodeModel(nn.Module):
    """Stand-in classifier: every clip is one flat grey level ``code``; the model reads the code
    back through the normalisation and returns the logits listed for it."""

    def __init__(self, table: dict[int, list[float]]) -> None:
        super().__init__()
        self.table = {k: torch.tensor(v) for k, v in table.items()}

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [N, 3, T, S, S] -> [N, C]
        red = x[:, 0].mean(dim=(1, 2, 3)) * KINETICS_STD[0] + KINETICS_MEAN[0]
        return torch.stack([self.table[int(c)] for c in (red * 255).round().long()])


# video -> (label, logits of its two clips)
VIDEOS = {
    # mean logits say class 1, mean softmax says class 0: the protocol averages the softmax
    0: (0, [[10, 0, 0, 0, 0, 0], [-10, 2, 0, 0, 0, 0]]),
    1: (1, [[0, 3, 5, 0, 0, 0], [0, 4, 6, 0, 0, 0]]),  # predicted 2, class 1 second: top-5 hit
    2: (5, [[1, 2, 3, 4, 5, -9], [1, 2, 3, 4, 5, -9]]),  # class 5 ranked last: top-5 miss
    3: (0, [[1, 0, 0, 7, 0, 0], [1, 0, 0, 7, 0, 0]]),  # predicted 3, class 0 second
}


def batches(codes_per_video: dict[int, list[int]], labels: list[int], batch: int = 3):
    """Uniform-mode batches of flat clips: frames ``[B, 2, T, 32, 32, 3]`` filled with codes."""
    out, ids = [], sorted(codes_per_video)
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        frames = torch.zeros(len(chunk), 2, 4, 32, 32, 3, dtype=torch.uint8)
        for b, v in enumerate(chunk):
            for k, code in enumerate(codes_per_video[v]):
                frames[b, k] = code
        out.append(
            {
                "frames": frames,
                "label": torch.tensor([labels[v] for v in chunk]),
                "index": torch.tensor(chunk),
            }
        )
    return out


@pytest.fixture
def stand_in():
    table, codes = {}, {}
    for v, (_, clips) in VIDEOS.items():
        codes[v] = [40 + 10 * v + k for k in range(len(clips))]
        table.update(zip(codes[v], clips, strict=True))
    return CodeModel(table), batches(codes, [VIDEOS[v][0] for v in sorted(VIDEOS)])


def test_video_aggregation_top_k_per_class_and_confusion(stand_in):
    model, loader = stand_in
    out = evaluate_videos(model, loader, "cpu", crop_size=28)
    assert out["pred"].tolist() == [0, 2, 4, 3]
    assert out["top1"] == pytest.approx(25.0)
    assert out["top5"] == pytest.approx(75.0)
    assert out["num_videos"] == 4 and out["clips"] == 2 and out["num_classes"] == C
    per_class = out["per_class"]
    assert per_class[0] == pytest.approx(50.0) and per_class[1] == 0 and per_class[5] == 0
    assert all(math.isnan(per_class[c]) for c in (2, 3, 4))  # no test videos
    assert out["per_class_mean"] == pytest.approx(50.0 / 3)
    expected = np.zeros((C, C), dtype=np.int64)
    for true, pred in [(0, 0), (1, 2), (5, 4), (0, 3)]:
        expected[true, pred] += 1
    assert np.array_equal(out["confusion"], expected)
    logits = torch.tensor([VIDEOS[v][1] for v in range(4)], dtype=torch.float32)
    assert torch.allclose(out["scores"], logits.softmax(2).mean(1), atol=1e-6)
    assert logits.mean(1).argmax(1)[0] == 1  # averaging logits would have predicted class 1


def test_video_metrics_checks_its_inputs():
    with pytest.raises(ValueError, match=r"\[N, K, 3\]"):
        video_metrics(torch.zeros(2, 5), torch.zeros(2), 3)
    with pytest.raises(ValueError, match="labels outside"):
        video_metrics(torch.zeros(2, 1, 3), torch.tensor([0, 3]), 3)
    few = video_metrics(torch.randn(3, 1, 2), torch.tensor([0, 1, 1]), 2)
    assert few["top5"] == 100.0  # top-5 of 2 classes is all of them


@pytest.fixture(scope="module")
def finetuned(tiny_data, h, tmp_path_factory):
    torch.manual_seed(7)
    model = Finetuner(ModelConfig(**h.tiny_model), num_classes=4, dropout=0.5)
    path = tmp_path_factory.mktemp("ft") / "weights.pt"
    save_finetuned(path, model, tiny_data.classes, to_dict(FinetuneConfig()), {"note": "test"})
    return model, path


def test_evaluate_cli_writes_metrics_and_tables(tiny_data, finetuned, h, tmp_path):
    model, weights = finetuned
    cfg = {
        "clips": 5,
        "clip_len": h.clip_len,
        "crop_size": h.crop,
        "batch_size": 4,
        "workers": 0,
        "device": "cpu",
    }
    out = tmp_path / "metrics.json"
    per_class, confusion = tmp_path / "per_class.csv", tmp_path / "confusion.csv"
    args = [
        "--cfg",
        json.dumps(cfg),
        "--manifest",
        str(tiny_data.manifest),
        "--store",
        str(tiny_data.store),
        "--weights",
        str(weights),
        "--out",
        str(out),
        "--per-class",
        str(per_class),
        "--confusion",
        str(confusion),
    ]
    proc = h.run_sstl("evaluate", *args)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(out.read_text())
    assert metrics["num_videos"] == tiny_data.test_videos and metrics["clips"] == 5
    assert metrics["num_classes"] == 4 and "mean of the clips' softmax" in metrics["protocol"]
    assert metrics["weights"]["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert "sha" in metrics["git"]
    table = pd.read_csv(per_class)
    assert table["class_name"].tolist() == tiny_data.classes
    assert table["videos"].sum() == tiny_data.test_videos
    matrix = pd.read_csv(confusion, index_col=0)
    assert matrix.shape == (4, 4) and matrix.to_numpy().sum() == tiny_data.test_videos
    assert 100.0 * np.trace(matrix.to_numpy()) / tiny_data.test_videos == pytest.approx(
        metrics["top1"]
    )

    # the same numbers in-process
    e = EvalConfig(**cfg)
    ds = ClipDataset(
        load_manifest(tiny_data.manifest, "test"),
        tiny_data.store,
        "uniform",
        e.clip_len,
        num_clips=e.clips,
    )
    ref = evaluate_videos(
        model, DataLoader(ds, batch_size=3, collate_fn=collate), "cpu", e.crop_size
    )
    assert ref["top1"] == pytest.approx(metrics["top1"])
    assert ref["per_class_mean"] == pytest.approx(metrics["per_class_mean"])


def test_evaluate_cli_rejects_bad_config(tiny_data, finetuned, capsys, tmp_path):
    from sstl.cli import main

    _, weights = finetuned
    code = main(
        [
            "evaluate",
            "--cfg",
            '{"clipz": 5}',
            "--manifest",
            str(tiny_data.manifest),
            "--store",
            str(tiny_data.store),
            "--weights",
            str(weights),
            "--out",
            str(tmp_path / "m.json"),
            "--per-class",
            str(tmp_path / "p.csv"),
            "--confusion",
            str(tmp_path / "c.csv"),
        ]
    )
    assert code == 2 and "clipz" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()
