"""The tiny config end to end on this machine: outputs, the rerun set, and a killed run resuming."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pandas as pd
import pytest
import yaml

from .conftest import job_counts, kill_group, snakemake, wait_for, workspace_copy

pytestmark = pytest.mark.slow


def test_tiny_pipeline_produces_every_output(tiny_run):
    from sstl.pipeline import REPORT_OUTPUTS

    for rel in REPORT_OUTPUTS:
        assert (tiny_run / rel).is_file(), rel
    manifest = pd.read_csv(tiny_run / "data/synthetic/manifest.csv")
    assert len(manifest) == 4 * (4 + 2)
    assert set(manifest["status"]) == {"ok"}
    retrieval = json.loads((tiny_run / "runs/retrieval/sstl/synthetic/metrics.json").read_text())
    assert 0.0 <= retrieval["top1"] <= 100.0
    table2 = (tiny_run / "results/tables/table2.md").read_text()
    assert "not run" in table2  # SSTL w/o temp is not in the tiny config: shown, never a number
    report = (tiny_run / "results/report.md").read_text()
    assert "Table 1" in report and "figure1.png" in report
    # the supervised reference: trained with labels, analysed on its backbone, in Figures 1-2
    assert (tiny_run / "runs/supervised/supervised/weights.pt").is_file()
    sim = json.loads((tiny_run / "runs/analysis/supervised/synthetic/similarity.json").read_text())
    assert sim["config"]["analysis"]["layer"] == "backbone"
    assert "supervised: not run" not in report
    # every job wrote a log
    for log in ("logs/synthetic.log", "logs/pretrain/sstl.log", "logs/supervise/supervised.log",
                "logs/report.log"):  # fmt: skip
        assert (tiny_run / log).stat().st_size > 0, log


def test_nothing_to_do_after_a_complete_run(tiny_run):
    out = snakemake(tiny_run, "-n", "--configfile", "config/tiny.yaml").stdout
    assert job_counts(out) == {}, out[-2000:]


def test_finetune_change_reruns_only_finetune_and_what_follows(tiny_run, tmp_path):
    cfg = yaml.safe_load((tiny_run / "config/tiny.yaml").read_text())
    cfg["finetune"]["optim"]["lr"] = 0.07
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump(cfg))
    out = snakemake(tiny_run, "-n", "--configfile", str(changed)).stdout
    counts = job_counts(out)
    # the supervised reference trains with the fine-tuning recipe: it and what reads it rerun
    assert set(counts) == {"supervise", "finetune", "evaluate", "retrieve", "analyse", "report",
                           "all"}, counts  # fmt: skip
    assert counts["finetune"] == 3  # sstl, scratch and supervised on the one dataset
    assert counts["retrieve"] == counts["analyse"] == counts["supervise"] == 1


def test_killed_pretraining_resumes_from_its_last_state(tmp_path):
    ws = workspace_copy(tmp_path / "ws")
    cfg = yaml.safe_load((ws / "config/tiny.yaml").read_text())
    cfg["pretrain"]["optim"]["epochs"] = 12  # long enough to be killed in the middle
    cfg["pretrain"]["run"]["save_every"] = 2
    (ws / "config/tiny.yaml").write_text(yaml.safe_dump(cfg))
    target = "runs/pretrain/sstl/weights.pt"
    proc = subprocess.Popen(
        ["snakemake", target, "--cores", "2", "--configfile", "config/tiny.yaml"],
        cwd=ws,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert wait_for(ws / "state/pretrain/sstl/resume.pt", timeout=600), "no resume state"
        first = os.path.getmtime(ws / "state/pretrain/sstl/resume.pt")
        # one more save, so the kill lands in the middle of training
        while os.path.getmtime(ws / "state/pretrain/sstl/resume.pt") == first:
            assert proc.poll() is None, "pretraining finished before it could be killed"
    finally:
        kill_group(proc)
    assert not (ws / target).exists()
    state = __import__("torch").load(ws / "state/pretrain/sstl/resume.pt", weights_only=True)
    saved_step = state["progress"]["step"]
    assert saved_step > 0
    snakemake(ws, "--unlock", "--configfile", "config/tiny.yaml")  # kill -9 left the lock
    snakemake(ws, target, "--configfile", "config/tiny.yaml", "--rerun-incomplete")
    assert (ws / target).is_file()
    log = (ws / "logs/pretrain/sstl.log").read_text()
    assert re.search(rf"resum\w* .*step {saved_step}\b", log, re.IGNORECASE), log[-3000:]
    # the metrics log continues from the saved step instead of starting over
    steps = [
        json.loads(line)["step"]
        for line in (ws / "state/pretrain/sstl/metrics.jsonl").read_text().splitlines()
        if line
    ]
    assert steps == sorted(steps), "metrics steps went backwards after the resume"
    shutil.rmtree(ws / "data", ignore_errors=True)
