"""Sharded extraction into the store, manifest merge, resume, broken videos, the CLIs."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from sstl.config import ConfigError, StoreConfig
from sstl.data import store
from sstl.data.clips import MANIFEST_COLUMNS, load_manifest
from sstl.data.extract import cli_extract, extract_shard, parse_shard, split_entries
from sstl.data.manifest import cli as cli_manifest
from sstl.data.manifest import merge_manifest
from sstl.data.store import StoreReader
from sstl.files import sha256_file

pytestmark = pytest.mark.filterwarnings("ignore:The image decoding and encoding:DeprecationWarning")

BROKEN = {
    "Basketball/v_Basketball_g99_c01": ("missing", "not found"),
    "Punch/v_Punch_g99_c01": ("corrupt", "truncated"),
    "Shotput/v_Shotput_g99_c01": ("corrupt", "zero bytes"),
    "HeadMassage/v_HeadMassage_g99_c01": ("corrupt", "not a readable media file"),
}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, ucf_source):
    """Two shards extracted and merged: (store folder, shard CSVs, manifest path)."""
    root = tmp_path_factory.mktemp("extracted")
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    csvs = [root / "shards" / f"{i}-of-2.csv" for i in range(2)]
    for i, csv in enumerate(csvs):
        extract_shard(
            entries,
            ucf_source / "videos",
            root / "store",
            StoreConfig(),
            (i, 2),
            csv,
            progress=False,
        )
    merge_manifest(csvs, root / "manifest.csv")
    return root / "store", csvs, root / "manifest.csv"


def test_entries_come_from_the_crlf_split_files(ucf_source):
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    assert len(entries) == 10
    assert ("Punch/v_Punch_g03_c01.avi", 4, "Punch", "train") in entries
    assert ("CliffDiving/v_CliffDiving_g03_c01.mp4", 2, "CliffDiving", "test") in entries
    assert all(not rel.endswith("\r") for rel, *_ in entries)


def test_two_shards_cover_every_video_exactly_once(extracted, ucf_source):
    store, csvs, manifest = extracted
    shards = [pd.read_csv(c, keep_default_na=False) for c in csvs]
    assert [len(s) for s in shards] == [5, 5]
    assert not set(shards[0]["id"]) & set(shards[1]["id"])
    df = load_manifest(manifest)
    assert list(df.columns) == MANIFEST_COLUMNS and len(df) == 10 and df["id"].is_unique
    assert list(df["split"]) == sorted(df["split"])  # sorted by split, then id
    ok = df[df["status"] == "ok"]
    assert len(ok) == 6
    files = sorted(p.relative_to(store).as_posix() for p in store.rglob("*") if p.is_file())
    assert files == sorted(ok["path"])  # exactly one store file per good video, no temp files
    row = df.set_index("id").loc["ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01"]
    assert (row.frames, row.width, row.height, row.fps) == (164, 170, 128, 25.0)
    assert row.label == 0 and row.class_name == "ApplyEyeMakeup" and row.split == "train"
    assert row["size"] == (store / row.path).stat().st_size
    src = ucf_source / "videos/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi"
    assert row.checksum == sha256_file(src)


def test_broken_videos_are_recorded_and_skipped(extracted):
    df = load_manifest(extracted[2]).set_index("id")
    for vid, (status, reason) in BROKEN.items():
        assert df.loc[vid, "status"] == status, vid
        assert reason in df.loc[vid, "error"], (vid, df.loc[vid, "error"])
        assert df.loc[vid, "path"] == "" and df.loc[vid, "frames"] == 0
    assert load_manifest(extracted[2], split="test")["split"].eq("test").all()


def test_rerun_reuses_finished_store_files(extracted, ucf_source, tmp_path):
    store, csvs, _ = extracted
    before = {p: p.stat().st_mtime_ns for p in store.rglob("*.mp4")}
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    df = extract_shard(
        entries,
        ucf_source / "videos",
        store,
        StoreConfig(),
        (0, 2),
        tmp_path / "0-of-2.csv",
        progress=False,
    )
    assert df.equals(pd.read_csv(csvs[0], keep_default_na=False)[df.columns].astype(df.dtypes))
    assert {p: p.stat().st_mtime_ns for p in store.rglob("*.mp4")} == before  # nothing rewritten
    # a different store config must not reuse the old files
    other = tmp_path / "store"
    other.mkdir()
    vid = df[df["status"] == "ok"].iloc[0]
    (other / vid.path).parent.mkdir(parents=True)
    (other / vid.path).write_bytes((store / vid.path).read_bytes())
    df2 = extract_shard(
        entries,
        ucf_source / "videos",
        other,
        StoreConfig(crf=30),
        (0, 2),
        tmp_path / "again.csv",
        progress=False,
    )
    assert df2.set_index("id").loc[vid.id, "size"] != vid["size"]


def test_store_from_an_older_writer_is_rewritten(ucf_source, tmp_path, monkeypatch):
    """Same source and config, but written by an older revision of the writer: not reused."""
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    shard, cfg = (0, len(entries)), StoreConfig(short_side=32)  # the first video only

    def extract() -> StoreReader:
        df = extract_shard(entries, ucf_source / "videos", tmp_path / "store", cfg, shard,
                           tmp_path / "0.csv", progress=False)  # fmt: skip
        assert df["status"].tolist() == ["ok"]
        return StoreReader(tmp_path / "store" / df.loc[0, "path"])

    monkeypatch.setitem(store.STORE_REVISION, "h264", 1)
    assert extract().revision == 1
    monkeypatch.undo()
    assert extract().revision == store.STORE_REVISION["h264"] == 2


def test_merge_checks_shards_and_duplicates(extracted, tmp_path):
    _, csvs, _ = extracted
    with pytest.raises(ValueError, match=r"missing"):
        merge_manifest(csvs[:1], tmp_path / "m.csv")
    dup = tmp_path / "1-of-2.csv"
    dup.write_text(csvs[0].read_text())
    with pytest.raises(ValueError, match="more than one row"):
        merge_manifest([csvs[0], dup], tmp_path / "m.csv")
    with pytest.raises(ValueError, match="<i>-of-<n>"):
        merge_manifest([tmp_path / "shard.csv"], tmp_path / "m.csv")
    assert not (tmp_path / "m.csv").exists()


def test_parse_shard():
    assert parse_shard("3/4") == (3, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "0/0"):
        with pytest.raises(ValueError, match="0 <= i < n"):
            parse_shard(bad)


def _extract_argv(source, store, shard: str, cfg: str, out) -> list[str]:
    return [
        "--dataset",
        "ucf101",
        "--source",
        str(source),
        "--store",
        str(store),
        "--shard",
        shard,
        "--cfg",
        cfg,
        "--out",
        str(out),
    ]


def test_cli_extract_and_manifest(ucf_source, tmp_path, capsys):
    cfg = json.dumps({"store": {"codec": "jpeg", "short_side": 32}, "split": 1})
    for i in range(3):
        argv = _extract_argv(
            ucf_source, tmp_path / "store", f"{i}/3", cfg, tmp_path / f"{i}-of-3.csv"
        )
        assert cli_extract(argv) == 0
        assert f"shard {i}/3" in capsys.readouterr().err
    shards = [str(tmp_path / f"{i}-of-3.csv") for i in range(3)]
    assert cli_manifest(["--shards", *shards, "--out", str(tmp_path / "manifest.csv")]) == 0
    df = load_manifest(tmp_path / "manifest.csv")
    assert len(df) == 10 and (df["status"] == "ok").sum() == 6
    assert set(df.loc[df["status"] == "ok", "height"]) == {32}
    assert all(p.endswith(".jpgs") for p in df.loc[df["status"] == "ok", "path"])


def test_cli_rejects_bad_shard_and_config(ucf_source, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_extract(_extract_argv(ucf_source, tmp_path, "3/3", "{}", tmp_path / "x.csv"))
    assert "0 <= i < n" in capsys.readouterr().err
    bad_cfgs = {'{"store": {"crf": 99}}': "crf", '{"splits": 1}': "splits", '{"split": 4}': "split"}
    for cfg, key in bad_cfgs.items():
        with pytest.raises(ConfigError, match=key):  # sstl.cli: exit 2, as every config error
            cli_extract(_extract_argv(ucf_source, tmp_path, "0/1", cfg, tmp_path / "x.csv"))
    assert not (tmp_path / "x.csv").exists()


@pytest.mark.slow
def test_sstl_entry_point_runs_extract_and_manifest(ucf_source, tmp_path):
    """The real console path: ``python -m sstl.cli extract`` / ``manifest`` in subprocesses."""
    run = [sys.executable, "-m", "sstl.cli"]
    cfg = json.dumps({"store": {"short_side": 32}})
    done = subprocess.run(
        [
            *run,
            "extract",
            *_extract_argv(ucf_source, tmp_path / "store", "0/1", cfg, tmp_path / "0-of-1.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "resolved config" in done.stderr and "corrupt" in done.stderr
    done = subprocess.run(
        [
            *run,
            "manifest",
            "--shards",
            str(tmp_path / "0-of-1.csv"),
            "--out",
            str(tmp_path / "manifest.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (load_manifest(tmp_path / "manifest.csv")["status"] == "ok").sum() == 6


def test_a_shard_with_no_video_is_an_empty_valid_shard(ucf_source, tmp_path):
    """More shards than videos (and a shard of only missing videos): the store folder exists,
    the CSV has the columns and no rows, and the merge goes on. Before: no folder, so Snakemake
    failed the job with MissingOutputException."""
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    shards = [tmp_path / "shards" / f"{i}-of-12.csv" for i in range(12)]
    for i in (10, 11):  # entries 0..9 go to shards 0..9
        store = tmp_path / "store" / f"{i}-of-12"
        df = extract_shard(entries, ucf_source / "videos", store, StoreConfig(short_side=32),
                           (i, 12), shards[i], progress=False)  # fmt: skip
        assert df.empty and store.is_dir() and list(store.iterdir()) == []
        assert load_manifest(shards[i]).columns.tolist() == MANIFEST_COLUMNS
    absent = [e for e in entries if e[0].startswith("Basketball/v_Basketball_g99")]
    store = tmp_path / "store" / "missing-only"
    df = extract_shard(absent, ucf_source / "videos", store, StoreConfig(short_side=32), (0, 1),
                       tmp_path / "missing-only.csv", progress=False)  # fmt: skip
    assert df["status"].tolist() == ["missing"] and store.is_dir()
    for i in range(10):
        shards[i].parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame(columns=MANIFEST_COLUMNS).to_csv(shards[i], index=False)
    assert merge_manifest(shards, tmp_path / "manifest.csv").empty


def test_missing_videos_are_one_log_line(ucf_source, tmp_path, caplog):
    entries = split_entries("ucf101", ucf_source / "splits", 1)
    absent = [(f"Punch/v_Punch_g{g:02d}_c01.avi", 4, "Punch", "train") for g in range(40, 60)]
    with caplog.at_level("WARNING", logger="sstl.extract"):
        df = extract_shard(
            entries + absent,
            ucf_source / "videos",
            tmp_path / "store",
            StoreConfig(short_side=32),
            (0, 1),
            tmp_path / "0.csv",
            progress=False,
            missing_list="data/ucf101/source/missing.txt",
        )
    assert (df["status"] == "missing").sum() == 21
    missing_lines = [r for r in caplog.records if "missing" in r.getMessage()]
    assert len(missing_lines) == 1, [r.getMessage() for r in missing_lines]
    line = missing_lines[0].getMessage()
    assert "21 of this shard's 30 videos are missing" in line
    assert "data/ucf101/source/missing.txt" in line and str(tmp_path / "0.csv") in line
