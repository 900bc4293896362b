"""Tables 1-5 from fixed metric files: values, differences, reasons, baselines, provenance."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from sstl.report.spec import SpecError, validate_spec
from sstl.report.tables import build_tables
from sstl.report.writers import write_tables

PROVENANCE = {
    "git": {"sha": "1234567890abcdef1234567890abcdef12345678", "dirty": False},
    "config": {"path": "config/config.yaml", "sha256": "c" * 64, "hash": "0123456789abcdef"},
    "manifests": {"synthetic": {"path": "data/synthetic/manifest.csv", "sha256": "d" * 64}},
}
NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def row(df: pd.DataFrame, method: str) -> pd.Series:
    return df[df.iloc[:, 0] == method].iloc[0]


def assert_not_run(cell, *parts: str) -> None:
    assert isinstance(cell, str) and cell.startswith("not run: "), cell
    assert not NUMBER.match(cell.strip())
    for part in parts:
        assert part in cell


@pytest.fixture
def tables(demo_runs, demo_spec):
    return build_tables(demo_spec, demo_runs, PROVENANCE)


def test_values_and_differences(tables):
    t1 = tables["table1"]
    sstl = row(t1, "SSTL")
    assert sstl["UCF101 ours"] == 62.5 and sstl["UCF101 paper"] == 79.1
    assert sstl["UCF101 Δ"] == pytest.approx(62.5 - 79.1)
    assert sstl["Experiment"] == "sstl"
    assert row(t1, "Scratch")["UCF101 Δ"] == pytest.approx(25.0 - 51.6)
    t2 = row(tables["table2"], "SSTL (w/o temp)")
    assert t2["Top1 ours"] == 30.0 and t2["Top1 Δ"] == pytest.approx(30.0 - 25.4)
    assert t2["Top50 ours"] == 70.0 and t2["Top50 paper"] == 69.5
    assert tables["table4"].iloc[6]["UCF101 ours"] == 62.5  # row7 -> sstl
    assert tables["table4"].iloc[6]["UCF101 Δ"] == pytest.approx(62.5 - 75.2)
    assert len(tables["table4"]) == 7 and len(tables["table5"]) == 5


def test_cells_not_run_say_why_and_hold_no_number(tables):
    t1 = row(tables["table1"], "SSTL")
    assert_not_run(t1["HMDB51 ours"], "no dataset of ours stands in for HMDB51")
    assert t1["HMDB51 Δ"] is None and t1["HMDB51 paper"] == 49.7
    t4 = tables["table4"]
    assert_not_run(t4.iloc[5]["UCF101 ours"], "experiment 'speed_pred' not in config")
    assert_not_run(t4.iloc[0]["UCF101 ours"], "no experiment assigned")
    assert t4.iloc[0]["UCF101 Δ"] is None
    assert_not_run(
        tables["table5"].iloc[0]["UCF101 ours"],
        "metrics file runs/finetune/no_memory/synthetic/metrics.json missing",
    )
    for col in ("Top1 ours", "Top5 ours", "Top50 ours"):
        assert_not_run(row(tables["table3"], "SSTL")[col], "HMDB51")


def test_missing_metrics_file_and_metric(demo_runs, demo_spec):
    (demo_runs / "retrieval/sstl_no_temp/synthetic/metrics.json").unlink()
    metrics = demo_runs / "retrieval/scratch/synthetic/metrics.json"
    metrics.write_text(metrics.read_text().replace('"top50"', '"top_50"'))
    t2 = build_tables(demo_spec, demo_runs, PROVENANCE)["table2"]
    assert_not_run(
        row(t2, "SSTL (w/o temp)")["Top1 ours"],
        "metrics file runs/retrieval/sstl_no_temp/synthetic/metrics.json missing",
    )
    assert_not_run(row(t2, "Scratch")["Top50 ours"], "top50 absent from")
    assert row(t2, "Scratch")["Top1 ours"] == 15.0


def test_experiment_outside_run_list(demo_runs, demo_spec):
    demo_spec["run"] = ["sstl"]
    t1 = build_tables(demo_spec, demo_runs, PROVENANCE)["table1"]
    assert_not_run(row(t1, "Scratch")["UCF101 ours"], "'scratch' not in the config's run list")


def test_baseline_rows_as_published(tables):
    vcop = row(tables["table1"], "VCOP [2019 CVPR]")
    assert vcop["UCF101 ours"] == "published" and vcop["UCF101 paper"] == 64.9
    assert vcop["UCF101 Δ"] is None and vcop["Training data"] == "UCF101"
    memdpc = row(tables["table2"], "MemDPC")
    assert memdpc["Top50 ours"] == "published" and memdpc["Top50 paper"] is None
    assert row(tables["table1"], "Scratch")["Training data"] == "-"
    assert tables["table4"].iloc[0]["Color jittering"] == "×"


def test_provenance_and_footnotes(tables):
    prov = tables["table1"].attrs["provenance"]
    assert any("git commit 1234567890abcdef" in p and "sha256 " + "c" * 64 in p for p in prov)
    assert any("data manifest synthetic" in p and "d" * 64 in p for p in prov)
    assert any(
        "runs/finetune/sstl/synthetic/metrics.json: checkpoint "
        "runs/finetune/sstl/synthetic/weights.pt sha256 " + "a" * 64 in p
        for p in prov
    )
    assert any("none (random init)" in p for p in prov)  # scratch has no checkpoint
    assert any("stand-in" in f for f in tables["table2"].attrs["footnotes"])
    assert any("-26-" in f for f in tables["table2"].attrs["footnotes"])


def test_writers(tables, tmp_path):
    written = write_tables(tables, tmp_path / "tables")
    assert len(written) == 15
    csv = pd.read_csv(tmp_path / "tables/table1.csv", comment="#")
    assert list(csv["UCF101 paper"]) == [r for r in tables["table1"]["UCF101 paper"]]
    assert csv.loc[csv["Method"] == "SSTL", "UCF101 ours"].item() == "62.5"
    raw = (tmp_path / "tables/table1.csv").read_text()
    assert "# provenance: git commit 1234567890abcdef" in raw
    md = (tmp_path / "tables/table4.md").read_text()
    assert "| 62.5 " in md and "-12.7" in md  # 62.5 - 75.2
    assert "not run [1]" in md and "[1] not run: no experiment assigned" in md
    assert "provenance: data manifest synthetic" in md
    tex = (tmp_path / "tables/table2.tex").read_text()
    assert r"\toprule" in tex and r"\bottomrule" in tex and r"Top1 $\Delta$" in tex
    assert r"sstl\_no\_temp" in tex and "provenance: git commit" in tex


@pytest.mark.parametrize(
    "change,message",
    [
        ({"datasets": None}, "datasets"),
        ({"table4": {"row8": "x"}}, r"table4\.row8: not a reproducible row"),
        ({"table1": {"vcop": "x"}}, "vcop: not a reproducible row"),
        ({"table2": {"sstl": 3}}, r"table2\.sstl = 3"),
        ({"figure9": {}}, "unknown key 'figure9'"),
        ({"run": "sstl"}, "run = 'sstl'"),
    ],
)
def test_spec_errors(demo_spec, change, message):
    with pytest.raises(SpecError, match=message):
        validate_spec({**demo_spec, **change})


SETTINGS = {
    "sstl": {"backbone": "r3d_tiny (width 16)", "finetune_input": "28×28, 16 frames",
             "pretrain_data": "synthetic"},
    "scratch": {"backbone": "r3d_tiny (width 16)", "finetune_input": "28×28, 16 frames",
                "pretrain_data": None},
}  # fmt: skip
FACTS = {
    "counts": {
        "test": {"listed": 3783, "present": 3, "used": 3},
        "train": {"listed": 9537, "present": 6, "used": 5},
    },
    "same_checksum": 0,
    "same_checksum_pairs": [],
}


def test_our_rows_describe_our_runs_and_columns_their_data(demo_runs, demo_spec):
    """Before: Scratch/SSTL rows showed the paper's R3D-18, 112x112 and Kinetics-400 beside our
    numbers from another backbone and size; nothing said how much of the split was there."""
    spec = {**demo_spec, "settings": SETTINGS}
    prov = {**PROVENANCE, "manifests": {"synthetic": {**PROVENANCE["manifests"]["synthetic"],
                                                      **FACTS}}}  # fmt: skip
    tables = build_tables(spec, demo_runs, prov)
    sstl = row(tables["table1"], "SSTL")
    assert sstl["Backbone"] == "r3d_tiny (width 16) (paper: R3D-18)"
    assert sstl["Input size"] == "28×28, 16 frames (paper: 112×112)"
    assert sstl["Training data"] == "synthetic train, 5 videos (paper: Kinetics-400)"
    scratch = row(tables["table1"], "Scratch")
    assert scratch["Training data"] == "none (random init) (paper: -)"
    assert (
        row(tables["table1"], "VCOP [2019 CVPR]")["Backbone"] == "R3D-18"
    )  # published rows: the paper's
    assert row(tables["table2"], "SSTL")["Network"] == "r3d_tiny (width 16) (paper: R3D-18)"
    assert row(tables["table2"], "SSTL (w/o temp)")["Network"] == "R3D-18"  # no settings given
    notes = tables["table1"].attrs["footnotes"]
    assert (
        "Our UCF101 column ('synthetic'), videos listed by its split files: test 3 of 3,783 "
        "present, 3 used; train 6 of 9,537 present, 5 used." in notes
    )
    md = tables["table2"].attrs["footnotes"]
    assert any("train 6 of 9,537 present" in f for f in md)
    with pytest.raises(SpecError, match="settings"):
        validate_spec({**demo_spec, "settings": {"sstl": {"gpu": "H100"}}})


def test_settings_come_from_the_config(repo_dir):
    import yaml

    from sstl import pipeline as P

    cfg = yaml.safe_load((repo_dir / "config/paper.yaml").read_text())
    settings = P.report_spec(cfg)["settings"]
    assert settings["sstl"] == {
        "backbone": "R3D-18, spacetime stem max-pool",
        "finetune_input": "112×112, 16 frames",
        "pretrain_data": "kinetics400",
    }
    assert settings["scratch"]["pretrain_data"] is None
    demo = yaml.safe_load((repo_dir / "config/config.yaml").read_text())
    assert P.report_spec(demo)["settings"]["sstl"]["backbone"] == "r3d_tiny (width 16)"


def test_an_ablation_row_sharing_a_run_says_so(demo_runs, demo_spec):
    spec = {**demo_spec, "table4": {**demo_spec["table4"], "row2": "sstl_no_temp"}}
    t4 = build_tables(spec, demo_runs, PROVENANCE)["table4"]
    assert t4.iloc[1]["UCF101 ours"] == 50.0  # served by the w/o-temp run
    shared = [f for f in t4.attrs["footnotes"] if "row2" in f]
    assert shared == [
        "Row row2 is experiment 'sstl_no_temp', which also fills Table 2 sstl_wo_temp, Table 3 "
        "sstl_wo_temp: one run serves these cells."
    ]
    plain = build_tables(demo_spec, demo_runs, PROVENANCE)["table4"]
    assert not [f for f in plain.attrs["footnotes"] if "row2" in f]


def test_replicas_give_the_mean_and_a_t_interval(tmp_path, make_demo_runs, write_finetune,
                                                 demo_spec):  # fmt: skip
    from sstl.report.runs import Runs

    runs = make_demo_runs(tmp_path / "runs")
    for seed, top1 in enumerate((60.0, 64.0, 68.0)):
        write_finetune(runs, f"sstl_seed{seed}", "synthetic", top1)
    spec = {**demo_spec, "replicas": {"sstl": [f"sstl_seed{s}" for s in range(3)]}}
    files = sorted(p for p in runs.glob("*/*/*/*") if p.is_file())
    tables = build_tables(spec, Runs(files, runs), PROVENANCE)
    sstl = row(tables["table1"], "SSTL")
    assert sstl["UCF101 ours"] == pytest.approx(64.0)  # not the single run `sstl` (62.5)
    assert sstl["UCF101 ours ±95%"] == pytest.approx(4.3027 * 4 / 3**0.5, abs=1e-2)
    assert row(tables["table1"], "Scratch")["UCF101 ours ±95%"] is None  # one run
    assert "UCF101 ours ±95%" not in tables["table2"]  # no replicated run in it
    # a missing replica makes the cell "not run", never a mean of the others
    (runs / "finetune/sstl_seed1/synthetic/metrics.json").unlink()
    files = sorted(p for p in runs.glob("*/*/*/*") if p.is_file())
    t1 = build_tables(spec, Runs(files, runs), PROVENANCE)["table1"]
    assert_not_run(row(t1, "SSTL")["UCF101 ours"], "sstl_seed1")
