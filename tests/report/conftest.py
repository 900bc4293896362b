"""Fixtures for the report tests: fixed metric files, per-class tables and similarity results."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from sstl.eval import similarity as S
from sstl.report.runs import Runs

WEIGHTS_SHA = {"sstl": "a" * 64, "sstl_no_temp": "b" * 64, "scratch": None}
FINETUNE_TOP1 = {"sstl": 62.5, "sstl_no_temp": 50.0, "scratch": 25.0}
RETRIEVAL_TOP1 = {"sstl": 40.0, "sstl_no_temp": 30.0, "scratch": 15.0}


def _weights(path: str, exp: str) -> dict[str, Any]:
    """The ``weights`` record `sstl evaluate` / `sstl retrieve` write (absent for random init)."""
    sha = WEIGHTS_SHA.get(exp)
    return {"weights": {"path": path, "sha256": sha}} if sha else {}


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture(scope="session")
def write_finetune() -> Callable[..., Path]:
    """``write_finetune(runs, exp, ds, top1)``: a metrics.json as ``sstl evaluate`` writes it."""

    def write(runs: Path, exp: str, ds: str, top1: float) -> Path:
        return _write(
            runs / "finetune" / exp / ds / "metrics.json",
            {
                "top1": top1,
                "top5": min(100.0, top1 + 30),
                "per_class_mean": top1 - 1,
                "num_videos": 64,
                "num_classes": 8,
                "clips": 5,
                "protocol": "5 clips uniformly spaced, centre crop, mean softmax",
                **_weights(f"runs/finetune/{exp}/{ds}/weights.pt", exp),
                "git": {"sha": "f" * 40, "dirty": False},
            },
        )

    return write


@pytest.fixture(scope="session")
def write_retrieval() -> Callable[..., Path]:
    """``write_retrieval(runs, exp, ds, top1)``: a metrics.json as ``sstl retrieve`` writes it."""

    def write(runs: Path, exp: str, ds: str, top1: float) -> Path:
        tops = {f"top{k}": min(100.0, top1 + i * 10) for i, k in enumerate((1, 5, 10, 20, 50))}
        return _write(
            runs / "retrieval" / exp / ds / "metrics.json",
            {
                **tops,
                "ks": [1, 5, 10, 20, 50],
                "protocol": {
                    "layer": "projection",
                    "clips": 10,
                    "protocol": "clip",
                    "center": False,
                    "backend": "faiss",
                },
                "num_queries": 640,
                "num_gallery": 1920,
                **_weights(f"runs/pretrain/{exp}/weights.pt", exp),
                "git": {"sha": "e" * 40, "dirty": False},
            },
        )

    return write


def per_class_table(correct: list[int], total: int = 8) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "label": range(len(correct)),
            "class_name": [f"Class{i}" for i in range(len(correct))],
            "videos": [total] * len(correct),
            "correct": correct,
            "accuracy": [100.0 * c / total for c in correct],
        }
    )


@pytest.fixture(scope="session")
def per_class() -> Callable[..., pd.DataFrame]:
    """``per_class(correct_counts, total)``: a per_class.csv table as ``sstl evaluate`` writes."""
    return per_class_table


def similarity_result(seed: int, spread: float, videos: int = 6, clips: int = 5) -> dict:
    """A similarity.json payload computed by the real statistics on random features."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(videos, 1, 16))
    feats = base + spread * np.cumsum(rng.normal(size=(videos, clips, 16)), axis=1)
    positions = np.tile(np.linspace(0.2, 0.8, clips), (videos, 1))
    sims = {e: 1 - spread * e / 20 + 0.02 * rng.normal(size=videos) for e in (0, 4, 8, 12, 16)}
    return {
        "experiment": f"exp{seed}",
        "dataset": "synthetic",
        "num_videos": videos,
        "figure1": S.strength_curve(sims),
        "figure2": {
            **S.intra_inter(feats, rng),
            "distance": S.distance_curve(feats, positions),
        },
    }


@pytest.fixture(scope="session")
def similarity() -> Callable[..., dict]:
    return similarity_result


@pytest.fixture(scope="session")
def make_demo_runs(write_finetune, write_retrieval) -> Callable[[Path], Path]:
    """``make_demo_runs(runs)``: fine-tune and retrieval metrics for sstl, sstl_no_temp and
    scratch on the synthetic set, per-class tables, analyses for sstl and scratch (sstl_no_temp's
    missing)."""

    def make(runs: Path) -> Path:
        for exp in ("sstl", "sstl_no_temp", "scratch"):
            write_finetune(runs, exp, "synthetic", FINETUNE_TOP1[exp])
            write_retrieval(runs, exp, "synthetic", RETRIEVAL_TOP1[exp])
        per_class_table([8, 7, 6, 5, 5, 4, 3, 2]).to_csv(
            runs / "finetune/sstl/synthetic/per_class.csv", index=False
        )
        per_class_table([4, 4, 6, 5, 3, 4, 4, 2]).to_csv(
            runs / "finetune/sstl_no_temp/synthetic/per_class.csv", index=False
        )
        for seed, exp in enumerate(("sstl", "scratch")):
            _write(
                runs / "analysis" / exp / "synthetic" / "similarity.json",
                similarity_result(seed, 0.2 + seed),
            )
        return runs

    return make


def all_results(runs: Path) -> list[Path]:
    """Every result file under ``runs`` (what the workflow's report rule declares as inputs)."""
    return sorted(p for p in runs.glob("*/*/*/*") if p.is_file())


@pytest.fixture
def demo_runs(tmp_path, make_demo_runs) -> Runs:
    runs = make_demo_runs(tmp_path / "runs")
    return Runs(all_results(runs), runs)


def demo_spec_dict() -> dict[str, Any]:
    """The demo config's report spec, as ``sstl.pipeline.report_spec`` builds it."""
    return {
        "datasets": {"ucf101": "synthetic", "hmdb51": None},
        "table1": {"scratch": "scratch", "sstl": "sstl"},
        "table2": {"scratch": "scratch", "sstl_wo_temp": "sstl_no_temp", "sstl": "sstl"},
        "table3": {"scratch": "scratch", "sstl_wo_temp": "sstl_no_temp", "sstl": "sstl"},
        "table4": {"row7": "sstl", "row6": "speed_pred"},
        "table5": {"row5": "sstl", "row1": "no_memory"},
        "figure1": {"sstl": "sstl", "sstl_wo_temp": "sstl_no_temp", "random": "scratch"},
        "figure4": {
            "experiments": {
                "bs32_d128": {"batch": 32, "dim": 128, "exp": "sstl"},
                "bs32_d512": {"batch": 32, "dim": 512, "exp": None},
            }
        },
        "figure5": {"with_temp": "sstl", "without_temp": "sstl_no_temp"},
        "run": ["sstl", "sstl_no_temp", "scratch", "no_memory"],
        "experiments": {
            "sstl": "all components",
            "sstl_no_temp": "no temporal augmentation",
            "scratch": "random init",
            "no_memory": "Table 5 row 1",
        },
        "config_hash": "0123456789abcdef",
    }


@pytest.fixture(scope="session")
def make_demo_spec() -> Callable[[], dict[str, Any]]:
    return demo_spec_dict


@pytest.fixture
def demo_spec() -> dict[str, Any]:
    return demo_spec_dict()
