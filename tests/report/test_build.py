"""``sstl report`` end to end on fixed runs: files, report.md content, summary.json, errors."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import subprocess
import sys
import typing

import pytest
from PIL import Image

from sstl import config as C
from sstl.report.build import cli
from sstl.report.page import NOTES
from sstl.report.paper import load_paper
from sstl.report.runs import Runs, learning_is_real
from sstl.report.spec import validate_figures, validate_spec


def run_report(tmp_path, spec, *extra: str) -> subprocess.CompletedProcess:
    inputs = [str(p.relative_to(tmp_path)) for p in sorted((tmp_path / "runs").glob("*/*/*/*"))]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "sstl.cli",
            "report",
            "--spec",
            json.dumps(spec),
            "--runs",
            "runs",
            "--inputs",
            *inputs,
            "--out",
            "results",
            *extra,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, make_demo_runs, make_demo_spec):
    """One real ``sstl report`` subprocess on the demo runs, shared by this module's tests."""
    root = tmp_path_factory.mktemp("report")
    make_demo_runs(root / "runs")
    (root / "config.yaml").write_text("seed: 0\n")
    manifest = root / "data/synthetic/manifest.csv"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("id,path,label\nA/v1,A/v1.mp4,0\n")
    proc = run_report(
        root, make_demo_spec(), "--config", "config.yaml", "--manifests", str(manifest)
    )
    assert proc.returncode == 0, proc.stderr
    return root


@pytest.fixture(scope="module")
def built(workdir):
    return workdir / "results"


def test_outputs(built):
    for i in range(1, 6):
        for ext in ("csv", "md", "tex"):
            assert (built / f"tables/table{i}.{ext}").stat().st_size > 200
    for i in (1, 2, 4, 5):
        with Image.open(built / f"figures/figure{i}.png") as img:
            assert img.format == "PNG" and img.size[0] >= 800


def test_report_md(built, workdir):
    text = (built / "report.md").read_text()
    for i in range(1, 6):
        assert f"## Table {i}" in text and f"**Table {i}:" in text
    for i in (1, 2, 4, 5):
        assert f"![figure{i}](figures/figure{i}.png)" in text
    assert (built / "figures/figure1.png").is_file()  # the links are relative to report.md
    assert NOTES.read_text() in text  # notes included verbatim
    for c in load_paper()["contradictions"]:
        assert c["says"] in text
    config_sha = hashlib.sha256(b"seed: 0\n").hexdigest()
    assert f"config config.yaml sha256 {config_sha}" in text
    assert "config hash 0123456789abcdef" in text
    manifest_sha = hashlib.sha256((workdir / "data/synthetic/manifest.csv").read_bytes())
    assert manifest_sha.hexdigest() in text
    # the retrieval protocol, read from the metrics files
    assert "layer `projection`, 10 clips per video, protocol `clip`" in text
    assert "centring off" in text
    # learning is real: SSTL 62.5 / 40.0 vs scratch 25.0 / 15.0 vs no temp 50.0 / 30.0
    assert "| SSTL | sstl | 40.0 | 62.5 |" in text
    assert "SSTL - Random init (finetune top-1): +37.5 points" in text
    assert "SSTL - SSTL (w/o temp aug) (retrieval top-1): +10.0 points" in text
    # missing analysis of sstl_no_temp is explained under Figures 1 and 2
    assert "sstl_wo_temp: not run: runs/analysis/sstl_no_temp/synthetic/similarity.json" in text


def test_summary(built):
    summary = json.loads((built / "summary.json").read_text())
    assert summary["finetune"]["sstl"]["synthetic"]["top1"] == 62.5
    assert summary["retrieval"]["scratch"]["synthetic"]["top50"] == 55.0
    assert summary["analysis"]["sstl"]["synthetic"]["figure1_mean"]["0"] > 0.9
    sstl = next(r for r in summary["tables"]["table1"] if r["Method"] == "SSTL")
    assert sstl["UCF101 ours"] == 62.5 and sstl["UCF101 paper"] == 79.1
    assert summary["learning_is_real"]["models"]["SSTL"]["finetune"]["top1"] == 62.5
    assert summary["provenance"]["manifests"]["synthetic"]["path"].endswith("manifest.csv")


def test_only_the_declared_inputs_are_read(tmp_path, make_demo_runs, make_demo_spec):
    """Results of an experiment removed from the config stay in runs/ but are no input of the
    report: they must not reach summary.json, the tables or the protocol list."""
    runs = make_demo_runs(tmp_path / "runs")
    declared = [str(p) for p in sorted(runs.glob("*/*/*/*"))]
    stale = runs / "retrieval" / "old_exp" / "synthetic" / "metrics.json"
    stale.parent.mkdir(parents=True)
    stale.write_text((runs / "retrieval/sstl/synthetic/metrics.json").read_text())
    gone = runs / "finetune" / "sstl_no_temp" / "synthetic" / "metrics.json"  # not declared
    declared.remove(str(gone))
    out = tmp_path / "results"
    argv = ["--spec", json.dumps(make_demo_spec()), "--runs", str(runs), "--inputs", *declared]
    assert cli([*argv, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "old_exp" not in summary["retrieval"] and "sstl_no_temp" not in summary["finetune"]
    text = (out / "report.md").read_text()
    assert "old_exp" not in text
    assert "runs/finetune/sstl_no_temp/synthetic/metrics.json missing" in text
    with pytest.raises(SystemExit):  # an input outside <runs>/<kind>/<exp>/<dataset>/
        cli([*argv, str(tmp_path / "elsewhere.json"), "--out", str(out)])


def test_learning_is_real_margins(demo_runs, demo_spec):
    real = learning_is_real(validate_figures(validate_spec(demo_spec)), demo_runs)
    m = real["margins"]["SSTL - Random init (retrieval top-1)"]
    assert m["margin"] == pytest.approx(25.0)
    # binomial standard errors over 64 test videos (640 queries / 10 clips)
    se = [math.sqrt(p * (100 - p) / 64) for p in (40.0, 15.0)]
    assert m["ci95"] == pytest.approx(1.96 * math.hypot(*se))


@pytest.mark.parametrize(
    "change,message",
    [
        ({"table4": {"row9": "x"}}, "table4.row9: not a reproducible row"),
        ({"figure4": {"experiments": {"a": {"batch": 1}}}}, "figure4.experiments.a"),
        ({"figure5": {"with": "sstl"}}, "figure5: unknown key 'with'"),
    ],
)
def test_bad_spec_exits_with_message(tmp_path, demo_spec, capsys, change, message):
    with pytest.raises(SystemExit) as exit_info:
        cli(
            [
                "--spec",
                json.dumps({**demo_spec, **change}),
                "--runs",
                str(tmp_path),
                "--out",
                str(tmp_path / "out"),
            ]
        )
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


SECTIONS = {
    "pretrain": C.PretrainConfig,
    "finetune": C.FinetuneConfig,
    "retrieval": C.RetrievalConfig,
    "evaluate": C.EvalConfig,
    "store": C.StoreConfig,
    "analysis": C.AnalysisConfig,
}
EXTRA = {"finetune": {"datasets"}, "retrieval": {"datasets"}, "analysis": {"dataset"}}


def test_notes_name_real_config_keys():
    """Every `section.key` the notes cite resolves to a field of the sstl.config dataclasses."""
    sections = "|".join(SECTIONS)
    pattern = rf"`((?:{sections})\.[a-z_.]+)(?::[^`]*)?`"  # `key` or `key: value`
    keys = re.findall(pattern, NOTES.read_text())
    assert len(keys) > 25
    for key in keys:
        section, *path = key.split(".")
        cls = SECTIONS[section]
        for i, name in enumerate(path):
            if i == 0 and name in EXTRA.get(section, ()):
                break
            fields = {f.name for f in dataclasses.fields(cls)}
            assert name in fields, f"notes.md cites {key}, but {cls.__name__} has no {name}"
            cls = typing.get_type_hints(cls)[name]
            if not dataclasses.is_dataclass(cls):
                assert i == len(path) - 1, key
                break
    for short in ("rule", "momentum", "share_views", "layer", "protocol", "center", "batch_size"):
        assert short in " ".join(keys)


def test_report_warns_of_one_video_in_train_and_test(tmp_path, make_demo_runs, make_demo_spec):
    """A manifest where a test video is a byte copy of a train video (same source sha256): the
    report's Data section names the pair; the column says how much of the split was used."""
    import pandas as pd

    from sstl.data.clips import MANIFEST_COLUMNS

    make_demo_runs(tmp_path / "runs")
    rows = [
        ("A/v1", "train", "ok", "1" * 64),
        ("A/v2", "train", "ok", "2" * 64),
        ("B/v3", "train", "missing", ""),
        ("A/copy_of_v1", "test", "ok", "1" * 64),
        ("B/v4", "test", "corrupt", "4" * 64),
    ]
    df = pd.DataFrame([dict.fromkeys(MANIFEST_COLUMNS, "") for _ in rows])
    df[["id", "split", "status", "checksum"]] = rows
    manifest = tmp_path / "data/synthetic/manifest.csv"
    manifest.parent.mkdir(parents=True)
    df.to_csv(manifest, index=False)
    spec = json.dumps(make_demo_spec())
    out = tmp_path / "results"
    inputs = [str(p) for p in sorted((tmp_path / "runs").glob("*/*/*/*"))]
    argv = ["--spec", spec, "--runs", str(tmp_path / "runs"), "--inputs", *inputs]
    argv += ["--out", str(out)]
    assert cli([*argv, "--manifests", str(manifest)]) == 0
    text = (out / "report.md").read_text()
    assert "## Data" in text
    assert "test 2 of 2 present, 1 used; train 2 of 3 present, 2 used" in text
    assert "**Warning**: in `synthetic`, 1 train/test pair(s)" in text
    assert "train `A/v1` = test `A/copy_of_v1`" in text


def test_learning_is_real_over_seeds(tmp_path, make_demo_runs, write_retrieval, demo_spec):
    runs = make_demo_runs(tmp_path / "runs")
    for seed, (a, b) in enumerate(((40.0, 30.0), (44.0, 38.0), (48.0, 36.0))):
        write_retrieval(runs, f"sstl_seed{seed}", "synthetic", a)
        write_retrieval(runs, f"sstl_no_temp_seed{seed}", "synthetic", b)
    spec = {
        **demo_spec,
        "replicas": {
            "sstl": [f"sstl_seed{s}" for s in range(3)],
            "sstl_no_temp": [f"sstl_no_temp_seed{s}" for s in range(3)],
        },
    }
    files = sorted(p for p in runs.glob("*/*/*/*") if p.is_file())
    real = learning_is_real(validate_figures(validate_spec(spec)), Runs(files, runs))
    m = real["margins"]["SSTL - SSTL (w/o temp aug) (retrieval top-1)"]
    # per-seed differences 10, 6, 12: mean 9.33, sd 3.06, t(0.975, 2) = 4.303
    assert m["margin"] == pytest.approx(28 / 3)
    assert m["ci95"] == pytest.approx(4.3027 * math.sqrt(28 / 3) / math.sqrt(3), abs=1e-2)
    assert m["how"] == "t-interval over 3 seeds"
    assert real["models"]["SSTL"]["retrieval"]["seeds"] == [40.0, 44.0, 48.0]
    # random init ran once: its margin falls back to the binomial interval over test videos
    assert "binomial" in real["margins"]["SSTL - Random init (retrieval top-1)"]["how"]
