"""bench/gpu_check.sh, the GPU measurements, in its CPU smoke mode: every step runs and reports.

On a GPU machine the same script measures (a) the step's clips/s, MFU and memory, (b) the share of
step time spent waiting on the loader, (c) two-rank DDP; here it proves the script and its parts
work end to end (the real frame store, ``sstl pretrain``, torchrun) at smoke sizes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_smoke_on_cpu(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "bench" / "gpu_check.sh"), "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    summary = (out / "summary.txt").read_text() if (out / "summary.txt").exists() else ""
    assert proc.returncode == 0, f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"

    # (a) the step with and without channels-last (torch.compile only on a GPU)
    for name, channels_last in (("a_plain", False), ("a_channelslast", True)):
        a = json.loads((out / f"{name}.json").read_text())
        assert a["world_size"] == 1 and a["channels_last"] is channels_last, a
        assert a["clips_per_s"] > 0 and a["gflop_per_clip_fwd_bwd"] > 0, a
    # (b) loader-fed pretraining per worker count; mixed aspect ratios, or (while training cannot
    # batch mixed frame sizes, issue 9) a 4:3 store, and the summary says why
    b = json.loads((out / "b.json").read_text())
    assert [r["workers"] for r in b["runs"]] == [1, 2], b
    for run in b["runs"]:
        assert 0 <= run["data_wait_fraction"] <= 1 and run["steps_timed"] == 5, run
        assert run["ms_per_step"] > 0, run
    if b["aspect"] != "mixed":
        assert "mixed aspect ratios FAILED: stack expects" in summary, summary
    # (c) two ranks of the training code's DDP (gloo on a CPU)
    c = json.loads((out / "c.json").read_text())
    assert c["world_size"] == 2 and c["clips_per_step"] == 8, c
    assert "x2 ranks" in summary and "gpu_check:" in summary, summary
