"""The paper's ablation claims judged on replicated runs: support, contradict, cannot tell."""

from __future__ import annotations

import pytest

from sstl.report.claims import check_claims, claims_md, verdict
from sstl.report.runs import Runs

# experiment -> fine-tune top-1 of seeds 0, 1, 2
TOP1 = {
    "no_temp": (50.0, 52.0, 51.0),  # Table 4 row 2
    "full": (60.0, 63.0, 61.0),  # row 7: clearly above row 2 -> supports
    "drop0": (55.0, 56.0, 54.0),  # row 3
    "drop4": (58.0, 59.0, 57.5),  # row 4: above row 3
    "drop6": (63.0, 62.0, 64.0),  # row 5: clearly ABOVE row 4 -> contradicts "up to a point"
    "nobank": (50.0, 55.0, 45.0),  # Table 5 row 1
    "bank": (52.0, 50.0, 51.0),  # row 2: within the noise of row 1 -> cannot tell
}


def _spec_and_runs(tmp_path, write_finetune, seeds=(0, 1, 2)):
    runs = tmp_path / "runs"
    for exp, values in TOP1.items():
        for s in seeds:
            write_finetune(runs, f"{exp}_seed{s}", "synthetic", values[s])
    spec = {
        "datasets": {"ucf101": "synthetic", "hmdb51": None},
        "table4": {"row2": "no_temp", "row7": "full", "row3": "drop0", "row4": "drop4",
                   "row5": "drop6"},
        "table5": {"row1": "nobank", "row2": "bank"},
        "replicas": {e: [f"{e}_seed{s}" for s in seeds] for e in TOP1},
        "run": list(TOP1),
    }  # fmt: skip
    files = sorted(p for p in runs.glob("*/*/*/*") if p.is_file())
    return spec, Runs(files, runs)


def test_each_claim_gets_a_verdict_from_the_seeds(tmp_path, write_finetune):
    spec, runs = _spec_and_runs(tmp_path, write_finetune)
    got = {c["claim"].split(" (")[0]: c for c in check_claims(spec, runs)}
    assert got["Temporal augmentation helps"]["verdict"] == "supports"
    first = got["Temporal augmentation helps"]["comparisons"][0]
    assert first["diff"] == pytest.approx(31 / 3)  # the mean of 10, 11, 10
    assert got["Dropped frames help up to a point"]["verdict"] == "contradicts"
    memory = got["The memory bank helps"]
    assert memory["verdict"] == "cannot tell"  # row 2 vs 1 undecided, row 4 not run
    assert "row4: not run" in memory["comparisons"][1]["why"]
    assert got["The clip-to-video loss helps"]["verdict"] == "cannot tell"
    text = claims_md(list(got.values()))
    assert "our runs **supports**" in text and "4.row7 − 4.row2 = +10.3 ±" in text


def test_one_seed_cannot_tell(tmp_path, write_finetune):
    spec, runs = _spec_and_runs(tmp_path, write_finetune, seeds=(0,))
    claims = check_claims(spec, runs)
    assert {c["verdict"] for c in claims} == {"cannot tell"}
    assert "needs the same number (>= 2) of seeds" in claims[0]["comparisons"][0]["why"]


def test_verdict_rules():
    assert verdict([1, 1]) == "supports"
    assert verdict([1, -1]) == "contradicts"
    assert verdict([1, 0]) == verdict([1, None]) == verdict([]) == "cannot tell"
