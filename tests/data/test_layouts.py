"""Local copies as they really are: other layouts and containers, wrong paths, unlisted files."""

from __future__ import annotations

import csv
import json
import logging
import shutil
from pathlib import Path

import pytest

from sstl.config import ConfigError, DatasetConfig
from sstl.data.acquire import MissingVideosError, acquire, cli
from sstl.data.extract import extract_shard, split_entries
from sstl.data.layout import read_located

HMDB = {  # the real HMDB51 samples (re-encoded .mp4) -> class folder
    "50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4": "drink",
    "BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4": "dive",
    "BaseballSwingAnalysis_swing_baseball_u_nm_np1_ba_med_0.mp4": "swing_baseball",
}


def hmdb_copy(shared_dir: Path, root: Path) -> Path:
    for name, cls in HMDB.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_dir / "videos/hmdb51" / name, root / cls / name)
    return root


def hmdb_splits(root: Path, unused: str = "") -> Path:
    """HMDB51-format split files naming the samples as the official files do (``.avi``)."""
    root.mkdir(parents=True)
    marks = {"drink": "1", "dive": "2", "swing_baseball": "1"}
    for name, cls in HMDB.items():
        lines = f"{Path(name).stem}.avi {marks[cls]} \n"
        if unused and cls == "drink":
            lines += f"{unused} 0 \n"  # named, but unused in split 1
        (root / f"{cls}_test_split1.txt").write_text(lines)
    return root


def test_hmdb51_listed_avi_found_as_mp4_and_extracted(shared_dir, tmp_path):
    copy = hmdb_copy(shared_dir, tmp_path / "hmdb51")
    notes = hmdb_splits(tmp_path / "splits", unused="extra_clip.avi")
    shutil.copyfile(copy / "drink" / next(iter(HMDB)), copy / "drink" / "extra_clip.mp4")
    cfg = DatasetConfig(source="local", local_path=str(copy), annotations=str(notes))
    out = tmp_path / "source"
    summary = acquire("hmdb51", cfg, out)
    assert summary["counts"]["train"] == {"listed": 2, "present": 2, "missing": 0}
    assert summary["counts"]["test"] == {"listed": 1, "present": 1, "missing": 0}
    assert summary["unlisted"] == 0  # extra_clip is named (mark 0) by the split files
    located = read_located(out / "located.csv")
    assert located["drink/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.avi"] == (
        "drink/50_FIRST_DATES_drink_u_nm_np1_fr_goo_29.mp4"
    )
    entries = split_entries("hmdb51", out / "splits")
    df = extract_shard(entries, out / "videos", tmp_path / "store", _store(), (0, 1),
                       tmp_path / "m.csv", progress=False, located=located)  # fmt: skip
    assert set(df["status"]) == {"ok"} and len(df) == 3
    # ids stay the listed ones, whatever the container
    assert "dive/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3" in set(df["id"])
    assert len(set(df["width"])) == 2  # 340x256 and 306x256 sources: two stored widths


def _store():
    from sstl.config import StoreConfig

    return StoreConfig(short_side=32, gop=8)


def test_local_path_one_folder_too_high_fails_and_says_why(shared_dir, tmp_path, caplog):
    hmdb_copy(shared_dir, tmp_path / "datasets" / "hmdb51")
    notes = hmdb_splits(tmp_path / "splits")
    cfg = DatasetConfig(source="local", local_path=str(tmp_path / "datasets"),
                        annotations=str(notes), allow_missing=True)  # fmt: skip
    with pytest.raises(MissingVideosError) as err:  # before: "source ready", exit 0
        acquire("hmdb51", cfg, tmp_path / "source")
    msg = str(err.value)
    assert "train 0 of 2, test 0 of 1 present" in msg and "min_present = 0.5" in msg
    assert "3 video files" in msg and "hmdb51/drink/50_FIRST_DATES" in msg
    assert "3 listed videos are one folder deeper, under 'hmdb51/'" in msg
    assert not (tmp_path / "source/source.json").exists()


def test_wrong_local_path_fails_through_the_cli(shared_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    notes = hmdb_splits(tmp_path / "splits")
    cfg = {"source": "local", "local_path": str(tmp_path / "empty"), "allow_missing": True}
    argv = ["--dataset", "hmdb51", "--cfg", json.dumps(cfg), "--out", str(tmp_path / "s")]
    assert cli([*argv, "--split-dir", str(notes)]) == 1  # before: 0 ("source ready")
    assert "too few of the videos" in capsys.readouterr().err
    cfg["min_present"] = 0.0  # asked for explicitly: goes on
    argv[3] = json.dumps(cfg)
    assert cli([*argv, "--split-dir", str(notes)]) == 0


def test_unlisted_files_are_counted_with_examples(shared_dir, tmp_path, caplog):
    copy = hmdb_copy(shared_dir, tmp_path / "hmdb51")
    for k in range(7):
        shutil.copyfile(copy / "drink" / next(iter(HMDB)), copy / "dive" / f"renamed_{k}.mp4")
    cfg = DatasetConfig(source="local", local_path=str(copy),
                        annotations=str(hmdb_splits(tmp_path / "splits")))  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="sstl.data.acquire"):
        summary = acquire("hmdb51", cfg, tmp_path / "source")
    assert summary["unlisted"] == 7 and summary["unlisted_examples"][0] == "dive/renamed_0.mp4"
    assert len(summary["unlisted_examples"]) == 5
    assert "7 video files" in caplog.text and "dive/renamed_4.mp4" in caplog.text
    assert "dive/renamed_5.mp4" not in caplog.text  # a few examples, not the whole list


@pytest.mark.parametrize("layout", ["spaces", "underscores", "flat"])
def test_kinetics_layouts_matched_by_youtube_id(kinetics_copies, tmp_path, layout):
    copy, notes = kinetics_copies[layout]
    cfg = DatasetConfig(source="local", local_path=str(copy), annotations=str(notes))
    summary = acquire("kinetics400", cfg, tmp_path / "source")
    assert summary["counts"] == {
        "train": {"listed": 4, "present": 4, "missing": 0},
        "val": {"listed": 1, "present": 1, "missing": 0},
    }
    assert summary["unlisted"] == 0 and summary["classes"] == 3
    located = read_located(tmp_path / "source/located.csv")
    suffixes = {Path(p).suffix for p in located.values()}
    assert suffixes == {".mkv", ".webm", ".avi", ".mp4"}
    # the manifest ids are the listed ones: <label>/<id>_<start:06d>_<end:06d>
    assert "massaging person's head/-abc_DEF-12_000005_000015.mp4" in located


def test_kinetics_duplicates_other_segments_and_strays(kinetics_copies, tmp_path, caplog):
    copy, notes = kinetics_copies["spaces"]
    mine = tmp_path / "k400"
    shutil.copytree(copy, mine)
    label = mine / "abseiling"
    first = next(label.glob("AbCdEfGhIjK_*"))
    shutil.copyfile(first, mine / "AbCdEfGhIjK.webm")  # a second copy, flat and without segment
    shutil.copyfile(first, label / "AbCdEfGhIjK_000099_000109.mp4")  # another segment: unnamed
    shutil.copyfile(first, label / "not_a_kinetics_name.mp4")
    cfg = DatasetConfig(source="local", local_path=str(mine), annotations=str(notes))
    with caplog.at_level(logging.WARNING, logger="sstl.data.acquire"):
        summary = acquire("kinetics400", cfg, tmp_path / "source")
    assert summary["duplicates"] == 1 and "found more than once" in caplog.text
    located = read_located(tmp_path / "source/located.csv")
    assert located["abseiling/AbCdEfGhIjK_000030_000040.mp4"] == f"abseiling/{first.name}"
    assert summary["unlisted"] == 1  # the name no CSV knows; the other segment is a known id
    assert summary["unlisted_examples"] == ["abseiling/not_a_kinetics_name.mp4"]


def test_kinetics_without_train_csv_names_the_file(kinetics_copies, tmp_path, caplog):
    copy, notes = kinetics_copies["flat"]
    val_only = tmp_path / "notes"
    val_only.mkdir()
    shutil.copyfile(notes / "validate.csv", val_only / "validate.csv")
    cfg = DatasetConfig(source="local", local_path=str(copy), annotations=str(val_only))
    with caplog.at_level(logging.WARNING, logger="sstl.data.acquire"):
        summary = acquire("kinetics400", cfg, tmp_path / "source")
    assert set(summary["counts"]) == {"val"}
    assert "train.csv" in caplog.text and "datasets.kinetics400.annotations" in caplog.text


def test_min_present_is_a_fraction():
    with pytest.raises(ConfigError, match=r"min_present = 1\.5"):
        DatasetConfig(min_present=1.5)


def test_located_csv_lists_every_found_video(kinetics_copies, tmp_path):
    copy, notes = kinetics_copies["underscores"]
    cfg = DatasetConfig(source="local", local_path=str(copy), annotations=str(notes))
    acquire("kinetics400", cfg, tmp_path / "source")
    with (tmp_path / "source/located.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 5
    assert all((tmp_path / "source/videos" / r["path"]).is_file() for r in rows)
    assert any(r["path"].startswith("massaging_person's_head/") for r in rows)
