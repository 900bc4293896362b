"""The whole tiny pipeline on real variety, through Snakemake: the real UCF101 and HMDB51 samples
laid out as local copies (listed as ``.avi`` as the official files do, stored as AVI, raw MPEG-4,
MP4), plus generated portrait (.mkv), square (.webm), 2x2-pixel (.avi) and one-frame (.mp4)
videos, names with ``!``, ``&`` and ``'``. Pretraining runs on the mixed-size HMDB51 copy;
fine-tuning, evaluation, retrieval, analysis and the report fill the UCF101 and HMDB51 columns.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from .conftest import snakemake, workspace_copy

pytestmark = pytest.mark.slow

UCF = {  # UCF101 copy: file under UCF-101/ -> (source: real sample or generated, part)
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi": ("ucf101/v_ApplyEyeMakeup_g01_c01.avi", 1),
    "Basketball/v_Basketball_g01_c02.mp4": ("ucf101/v_Basketball_g01_c02.mp4", 1),
    "HeadMassage/v_HeadMassage_g02_c05.avi": ("ucf101/v_HeadMassage_g02_c05.avi", 1),
    "Punch/v_Punch_g03_c01.avi": ("ucf101/v_Punch_g03_c01.avi", 1),
    "Punch/v_Punch_g08_c01.mkv": ("portrait.mkv", 1),
    "Shotput/v_Shotput_g08_c01.webm": ("square.webm", 1),
    "CliffDiving/v_CliffDiving_g03_c01.mp4": ("ucf101/v_CliffDiving_g03_c01.mp4", 2),
    "Shotput/v_Shotput_g05_c02.avi": ("ucf101/v_Shotput_g05_c02.avi", 2),
    "ApplyEyeMakeup/v_ApplyEyeMakeup_g09_c01.avi": ("tiny.avi", 2),
    "HeadMassage/v_HeadMassage_g09_c01.mp4": ("one_frame.mp4", 2),
}
HMDB = {  # HMDB51 copy (hmdb51_org/): file -> (source, 1 train | 2 test)
    "drink/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4": (
        "hmdb51/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4", 1),
    "dive/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4": (
        "hmdb51/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4", 1),
    "swing_baseball/BaseballSwingAnalysis_swing_baseball_u_nm_np1_ba_med_0.mp4": (
        "hmdb51/BaseballSwingAnalysis_swing_baseball_u_nm_np1_ba_med_0.mp4", 1),
    "drink/Ma'am_it's_a_drink!_&_more_drink_u_cm_np1_fr_med_2.mkv": ("portrait.mkv", 1),
    "dive/Cannon_Ball!_dive_f_cm_np1_ri_med_1.webm": ("square.webm", 1),
    "swing_baseball/Tiny_swing_baseball_f_nm_np1_fr_bad_0.avi": ("tiny.avi", 2),
    "dive/One_frame_dive_f_nm_np1_ba_med_4.mp4": ("one_frame.mp4", 2),
    # a byte copy of a train video in the test half: the report must warn about it
    "drink/50_FIRST_DATES_copy_drink_u_nm_np1_fr_goo_30.mp4": (
        "hmdb51/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4", 2),
}  # fmt: skip


def _avi(rel: str) -> str:
    """The name as the official split files give it: always ``.avi``."""
    return str(Path(rel).with_suffix(".avi"))


def build_copies(root: Path, shared: Path, odd: dict[str, Path]) -> dict[str, dict[str, str]]:
    """The two local copies and their split files; returns the datasets: config section."""

    def source(name: str) -> Path:
        return odd[name] if name in odd else shared / "videos" / name

    for rel, (src, _) in UCF.items():
        (root / "UCF-101" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source(src), root / "UCF-101" / rel)
    classes = sorted({rel.split("/")[0] for rel in UCF})
    notes = root / "ucf_splits"
    notes.mkdir()
    (notes / "classInd.txt").write_text("".join(f"{i + 1} {c}\n" for i, c in enumerate(classes)))
    train = [
        f"{_avi(r)} {classes.index(r.split('/')[0]) + 1}" for r, (_, p) in UCF.items() if p == 1
    ]
    (notes / "trainlist01.txt").write_text("\r\n".join(train) + "\r\n")
    test = [_avi(r) for r, (_, p) in UCF.items() if p == 2]
    (notes / "testlist01.txt").write_text("\r\n".join(test) + "\r\n")

    hmdb_notes = root / "testTrainMulti_7030_splits"
    hmdb_notes.mkdir()
    lines: dict[str, str] = {}
    for rel, (src, part) in HMDB.items():
        (root / "hmdb51_org" / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source(src), root / "hmdb51_org" / rel)
        cls, name = rel.split("/")
        lines[cls] = lines.get(cls, "") + f"{_avi(name)} {part} \n"
    for cls, text in lines.items():
        (hmdb_notes / f"{cls}_test_split1.txt").write_text(text)
    return {
        "ucf101": {"source": "local", "local_path": str(root / "UCF-101"),
                   "annotations": str(notes), "split": 1},
        "hmdb51": {"source": "local", "local_path": str(root / "hmdb51_org"),
                   "annotations": str(hmdb_notes), "split": 1},
    }  # fmt: skip


def real_config(tiny: dict, datasets: dict) -> dict:
    """config/tiny.yaml on the two real copies: pretraining on HMDB51 (mixed sizes), both
    downstream datasets, the report's UCF101 and HMDB51 columns."""
    cfg = dict(tiny)
    cfg["datasets"] = datasets
    cfg.pop("synthetic")
    cfg["pretrain"]["dataset"] = "hmdb51"
    cfg["pretrain"]["optim"]["batch_size"] = cfg["pretrain"]["optim"]["ref_batch"] = 4
    cfg["finetune"]["datasets"] = ["ucf101", "hmdb51"]
    cfg["finetune"]["optim"]["batch_size"] = cfg["finetune"]["optim"]["ref_batch"] = 4
    cfg["retrieval"]["datasets"] = ["ucf101", "hmdb51"]
    cfg["analysis"]["dataset"] = "hmdb51"
    cfg["report"]["datasets"] = {"ucf101": "ucf101", "hmdb51": "hmdb51"}
    cfg["report"]["table3"] = {"scratch": "scratch", "sstl": "sstl"}
    return cfg


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_dir, odd_videos) -> tuple[Path, float]:
    ws = workspace_copy(tmp_path_factory.mktemp("real"))
    datasets = build_copies(tmp_path_factory.mktemp("copies"), shared_dir, odd_videos)
    tiny = yaml.safe_load((ws / "config/tiny.yaml").read_text())
    (ws / "config/real.yaml").write_text(yaml.safe_dump(real_config(tiny, datasets)))
    start = time.perf_counter()
    snakemake(ws, "--configfile", "config/real.yaml")
    wall = time.perf_counter() - start
    print(f"\ntiny pipeline on the real clips: {wall:.0f} s wall")  # reported with -s
    return ws, wall


def test_every_stage_ran_on_every_frame_shape(real_run):
    ws, _ = real_run
    from sstl.pipeline import REPORT_OUTPUTS

    for rel in REPORT_OUTPUTS:
        assert (ws / rel).is_file(), rel
    for ds, n in (("ucf101", len(UCF)), ("hmdb51", len(HMDB))):
        m = pd.read_csv(ws / f"data/{ds}/manifest.csv")
        assert len(m) == n and set(m["status"]) == {"ok"}, m[["id", "status", "error"]]
        assert all(i.endswith(tuple("0123456789")) for i in m["id"])  # ids: listed, no suffix
    hmdb = pd.read_csv(ws / "data/hmdb51/manifest.csv")
    shapes = set(zip(hmdb["height"], hmdb["width"], strict=True))
    # 340x256 and 306x256 sources, portrait, square (also the 2x2 one), one frame 80x48
    assert {(32, 42), (32, 38), (56, 32), (32, 32), (32, 54)} <= shapes, shapes
    assert 1 in set(hmdb["frames"])
    train = hmdb[hmdb["split"] == "train"]
    assert len(set(zip(train["height"], train["width"], strict=True))) >= 3  # pretrained on
    log = (ws / "logs/pretrain/sstl.log").read_text()
    assert "Traceback" not in log
    for exp in ("sstl", "scratch"):
        for ds in ("ucf101", "hmdb51"):
            assert (ws / f"runs/finetune/{exp}/{ds}/metrics.json").is_file()
            assert (ws / f"runs/retrieval/{exp}/{ds}/metrics.json").is_file()
        assert (ws / f"runs/analysis/{exp}/hmdb51/similarity.json").is_file()


def test_report_has_hmdb51_columns_and_says_what_ran(real_run):
    ws, _ = real_run
    table1 = pd.read_csv(ws / "results/tables/table1.csv")
    sstl = table1[table1["Method"] == "SSTL"].iloc[0]
    for col in ("UCF101 ours", "HMDB51 ours"):
        assert re.fullmatch(r"\d+(\.\d+)?", str(sstl[col])), sstl[col]
    assert sstl["Backbone"] == "r3d_tiny (width 4) (paper: R3D-18)"
    assert sstl["Input size"] == "28×28, 8 frames (paper: 112×112)"
    assert sstl["Training data"] == "hmdb51 train, 5 videos (paper: Kinetics-400)"
    table3 = pd.read_csv(ws / "results/tables/table3.csv")
    assert re.fullmatch(
        r"\d+(\.\d+)?", str(table3[table3["Method"] == "SSTL"].iloc[0]["Top1 ours"])
    )
    report = (ws / "results/report.md").read_text()
    assert "Our HMDB51 column ('hmdb51'), videos listed by its split files: test 3 of 3" in report
    assert "train 6 of 6 present, 6 used" in report  # UCF101
    assert "**Warning**: in `hmdb51`, 1 train/test pair(s)" in report
    assert "test `drink/50_FIRST_DATES_copy_drink_u_nm_np1_fr_goo_30`" in report
