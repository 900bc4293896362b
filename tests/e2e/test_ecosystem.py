"""The tiny run as Snakemake and DVC users look at it: `snakemake --report report.zip` holds the
figures, tables and training curves with their captions, and `dvc plots show` draws the curves."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zipfile

import pandas as pd
import pytest
import yaml

from .conftest import snakemake

pytestmark = pytest.mark.slow
GIT = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
TRAINING = ["runs/pretrain/sstl", "runs/finetune/sstl/synthetic", "runs/finetune/scratch/synthetic"]


def test_both_training_stages_wrote_their_curves(tiny_run):
    for run in TRAINING:
        steps = pd.read_csv(tiny_run / run / "curves.csv")
        assert steps["step"].tolist() == list(range(1, len(steps) + 1)) and len(steps) >= 4, run
        assert steps[["lr", "loss_total"]].notna().all().all(), run
        epochs = pd.read_csv(tiny_run / run / "epochs.csv")
        assert epochs["epoch"].tolist() == [1, 2], run  # tiny.yaml: 2 epochs each
        assert (tiny_run / run / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", run
    for run in TRAINING[1:]:  # val_every 1: every epoch validated
        validation = pd.read_csv(tiny_run / run / "validation.csv")
        assert validation["epoch"].tolist() == [1, 2], run
        assert validation["val_clip_acc"].between(0, 100).all(), run
    for stage in ("pretrain/sstl", "finetune/sstl/synthetic"):  # TensorBoard for both stages
        assert list((tiny_run / "state" / stage / "tb").glob("events.out.tfevents.*")), stage


def test_snakemake_report_holds_figures_tables_and_curves(tiny_run, tmp_path):
    out = tmp_path / "report.zip"
    snakemake(tiny_run, "--report", str(out), "--configfile", "config/tiny.yaml")
    with zipfile.ZipFile(out) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        stored = {archive.read(n) for n in names}  # data/raw/<hash>/<file name>
        html = archive.read(next(n for n in names if n.endswith("/report.html"))).decode()
    expected = [f"results/figures/figure{i}.png" for i in (1, 2, 4, 5)]
    expected += [f"results/tables/table{i}.csv" for i in range(1, 6)]
    # every training run's curves: SSTL, random init and the supervised reference (sstl supervise)
    expected += sorted(
        p.relative_to(tiny_run).as_posix() for p in tiny_run.glob("runs/**/curves.png")
    )
    assert {f"{run}/curves.png" for run in TRAINING} <= set(expected)
    assert "runs/supervised/supervised/curves.png" in expected
    for rel in expected:
        assert (tiny_run / rel).read_bytes() in stored, f"{rel} is not in report.zip: {names}"
    assert len(names) == len(expected) + 1  # and the page
    # the front page, the categories and the captions, their wildcards filled in
    assert "reproduces <em>Self-supervised Temporal Learning</em>" in html
    assert "This run pretrains on <strong>synthetic</strong>" in html
    for text in ('"Figures"', '"Tables"', '"Training curves"', "cosine similarity of two",
                 "Pretraining curves of experiment <strong>sstl</strong>",
                 "Fine-tuning curves of experiment <strong>scratch</strong>"):  # fmt: skip
        assert text in html, text
    assert "snakemake.wildcards" not in html  # every caption template was rendered


def test_dvc_plots_show_draws_the_training_curves(tiny_run, tmp_path):
    ws = shutil.copytree(tiny_run, tmp_path / "ws", symlinks=True)  # the shared run stays as is
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}

    def run(*cmd: str) -> str:
        proc = subprocess.run(cmd, cwd=ws, capture_output=True, text=True, timeout=600, env=env)
        assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
        return proc.stdout

    run("sstl", "dvc", "generate", "--configfile", "config/tiny.yaml")
    definitions = yaml.safe_load((ws / "dvc.yaml").read_text())["plots"]
    shown = json.loads(run("dvc", "plots", "show", "--json"))
    assert not shown.get("errors"), shown["errors"]
    data = shown["data"]
    ids = {next(iter(p)) if isinstance(p, dict) else p for p in definitions}
    assert set(data) == ids
    for plot_id in ("pretrain-loss-total", "finetune-loss-total", "finetune-val-clip-acc"):
        (rendered,) = data[plot_id]
        assert rendered["type"] == "vega"
        values = rendered["content"]["data"]["values"]
        name = "validation.csv" if "val" in plot_id else "curves.csv"
        stage = plot_id.split("-")[0]  # every run of the stage: supervised reference included
        runs = sorted(p.parent.relative_to(tiny_run).as_posix()
                      for p in tiny_run.glob(f"runs/{stage}/**/{name}"))  # fmt: skip
        assert {r for r in TRAINING if r.startswith(f"runs/{stage}/")} <= set(runs), runs
        if len(runs) > 1:  # DVC names the file of each row (less the common prefix)
            files = {v["filename"] for v in values}
            assert len(files) == len(runs), (plot_id, files)
            assert all(any(f"{r}/{name}".endswith(f) for r in runs) for f in files), files
        rows = sum(len(pd.read_csv(tiny_run / r / name)) for r in runs)
        assert len(values) == rows, plot_id  # every row of every run
    curves = [p for p in ids if p.endswith("curves.png")]
    assert len(curves) == len(list(tiny_run.glob("runs/**/curves.png")))  # every training run
    assert all(data[p][0]["type"] == "image" for p in curves)
    run("dvc", "plots", "show", "-o", str(tmp_path / "plots"))  # the page a user opens
    assert (tmp_path / "plots" / "index.html").stat().st_size > 1000

    # dvc plots diff: this run committed, then a new run's curve against it
    run("sstl", "dvc", "commit", "--configfile", "config/tiny.yaml")
    run("git", "add", "dvc.yaml", "dvc.lock", ".gitignore")
    run(*GIT, "commit", "-qm", "the tiny run")
    curve = ws / "runs/pretrain/sstl/curves.csv"
    table = pd.read_csv(curve)
    table["loss_total"] *= 0.5
    curve.unlink()  # dvc commit linked it to the cache: write a new file, not through the link
    table.to_csv(curve, index=False)
    diff = json.loads(run("dvc", "plots", "diff", "HEAD", "--json"))
    assert not diff.get("errors"), diff["errors"]
    values = diff["data"]["pretrain-loss-total"][0]["content"]["data"]["values"]
    by_rev = {rev: [float(v["loss_total"]) for v in values if v["rev"] == rev]
              for rev in ("HEAD", "workspace")}  # fmt: skip
    assert by_rev["workspace"] == pytest.approx([x / 2 for x in by_rev["HEAD"]])
