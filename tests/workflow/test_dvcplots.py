"""dvc.yaml's top-level plots: the training curves of every training stage, and DVC reads them
(a tiny run's files rendered by `dvc plots show` are tested in tests/e2e/test_ecosystem.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

from sstl.dvcplots import plots

REPO = Path(__file__).resolve().parents[2]


def dvc() -> str:
    local = Path(sys.executable).parent / "dvc"
    return str(local) if local.exists() else "dvc"


def test_plots_overlay_the_runs_of_each_stage():
    stages = {
        "pretrain-a": {"outs": ["runs/pretrain/a/weights.pt", "runs/pretrain/a/curves.csv",
                                "runs/pretrain/a/epochs.csv", "runs/pretrain/a/curves.png"]},
        "pretrain-b": {"outs": ["runs/pretrain/b/curves.csv", "runs/pretrain/b/curves.png"]},
        "finetune-a-ucf101": {"outs": ["runs/finetune/a/ucf101/curves.csv",
                                       "runs/finetune/a/ucf101/validation.csv"]},
        "report": {"outs": ["results/curves.csv"]},  # another stage's file of the same name
    }  # fmt: skip
    found = plots(stages)
    by_id = {next(iter(p)): next(iter(p.values())) for p in found if isinstance(p, dict)}
    assert by_id["pretrain-loss-total"]["y"] == {
        "runs/pretrain/a/curves.csv": "loss_total",
        "runs/pretrain/b/curves.csv": "loss_total",
    }
    assert by_id["pretrain-lr"]["x"] == "step"
    assert by_id["finetune-val-clip-acc"]["y"] == {
        "runs/finetune/a/ucf101/validation.csv": "val_clip_acc"
    }
    assert by_id["finetune-val-clip-acc"]["x"] == "epoch"
    images = [p for p in found if isinstance(p, str)]
    assert images == ["runs/pretrain/a/curves.png", "runs/pretrain/b/curves.png"]
    assert plots({"report": {"outs": ["results/report.md"]}}) == []


def test_the_committed_dvc_yaml_plots_every_training_stage():
    dvc_yaml = yaml.safe_load((REPO / "dvc.yaml").read_text())
    assert dvc_yaml["plots"] == plots(dvc_yaml["stages"])
    training = [
        s for s in dvc_yaml["stages"] if s.startswith(("pretrain-", "supervise-", "finetune-"))
    ]
    images = {p for p in dvc_yaml["plots"] if isinstance(p, str)}
    assert len(images) == len(training) > 0


def test_dvc_reads_the_plot_definitions():
    """`dvc plots show` in the checkout (no runs here): every definition is known to DVC and the
    only complaint is that the run's files are absent."""
    proc = subprocess.run(
        [dvc(), "plots", "show", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "DVC_NO_ANALYTICS": "1"},
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    shown = json.loads(proc.stdout)
    defined = yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"]
    ids = {next(iter(p)) if isinstance(p, dict) else p for p in defined}
    assert set(shown["data"]) == ids
    assert {e["type"] for e in shown.get("errors", [])} <= {"FileNotFoundError"}, shown["errors"]
