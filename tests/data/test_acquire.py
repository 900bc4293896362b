"""Building a dataset's source folder: local copies validated, downloads from 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sstl.config import DatasetConfig
from sstl.data.acquire import MissingVideosError, acquire, cli

CLIPS = {  # real UCF101 clips in shared/videos/ucf101 -> their place in the UCF101 layout
    "v_ApplyEyeMakeup_g01_c01.avi": "ApplyEyeMakeup",
    "v_HeadMassage_g02_c05.avi": "HeadMassage",
    "v_Punch_g03_c01.avi": "Punch",
}


def ucf_tree(shared_dir: Path, root: Path) -> Path:
    for name, cls in CLIPS.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_dir / "videos/ucf101" / name, root / cls / name)
    return root


def small_splits(root: Path) -> Path:
    """A UCF101-format split set over the real clips, plus one listed video that does not exist."""
    root.mkdir()
    (root / "classInd.txt").write_bytes(b"1 ApplyEyeMakeup\r\n2 HeadMassage\r\n3 Punch\r\n")
    (root / "trainlist01.txt").write_bytes(
        b"ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi 1\r\nPunch/v_Punch_g03_c01.avi 3\r\n"
    )
    (root / "testlist01.txt").write_bytes(
        b"HeadMassage/v_HeadMassage_g02_c05.avi\r\nPunch/v_Punch_g09_c01.avi\r\n"
    )
    return root


def test_local_copy_missing_video_is_an_error(shared_dir, tmp_path):
    videos = ucf_tree(shared_dir, tmp_path / "UCF-101")
    split_dir = small_splits(tmp_path / "splits_in")
    cfg = DatasetConfig(source="local", local_path=str(videos))
    out = tmp_path / "source"
    with pytest.raises(MissingVideosError) as info:
        acquire("ucf101", cfg, out, split_dir=split_dir)
    msg = str(info.value)
    assert "1 of 4 videos" in msg and "Punch/v_Punch_g09_c01.avi" in msg
    assert str(out / "missing.txt") in msg and "allow_missing" in msg
    assert (out / "missing.txt").read_text() == "Punch/v_Punch_g09_c01.avi\n"
    assert not (out / "source.json").exists()

    summary = acquire("ucf101", DatasetConfig(**{**cfg.__dict__, "allow_missing": True}), out,
                      split_dir=split_dir)  # fmt: skip
    assert summary["counts"] == {
        "train": {"listed": 2, "present": 2, "missing": 0},
        "test": {"listed": 2, "present": 1, "missing": 1},
    }
    assert json.loads((out / "source.json").read_text()) == summary
    assert (out / "videos").is_symlink() and (out / "videos").resolve() == videos.resolve()
    assert (out / "splits/trainlist01.txt").read_bytes() == (
        split_dir / "trainlist01.txt"
    ).read_bytes()


def test_local_copy_against_official_ucf101_splits(shared_dir, tmp_path):
    videos = ucf_tree(shared_dir, tmp_path / "UCF-101")
    out = tmp_path / "source"
    cfg = DatasetConfig(source="local", local_path=str(videos))
    cfg.allow_missing = True  # still below min_present (0.5): an error
    with pytest.raises(MissingVideosError, match=r"train 0 of 9537, test 3 of 3783 present"):
        acquire("ucf101", cfg, out)
    cfg.allow_missing, cfg.min_present = False, 0.0
    with pytest.raises(
        MissingVideosError, match="13317 of 13320 videos listed by the ucf101 split 1"
    ):
        acquire("ucf101", cfg, out)
    cfg.allow_missing = True
    summary = acquire("ucf101", cfg, out)
    assert summary["counts"]["test"] == {"listed": 3783, "present": 3, "missing": 3780}
    assert summary["counts"]["train"]["present"] == 0 and summary["classes"] == 101
    assert len((out / "missing.txt").read_text().splitlines()) == 13317
    # The packaged official files are copied byte for byte (CRLF kept).
    assert (out / "splits/testlist01.txt").read_bytes().count(b"\r\n") == 3783


def test_kinetics_missing_is_recorded_not_fatal(shared_dir, tmp_path):
    videos = tmp_path / "k400"
    (videos / "javelin throw").mkdir(parents=True)
    shutil.copyfile(
        shared_dir / "videos/ucf101/v_Punch_g03_c01.avi",
        videos / "javelin throw/--07WQ2iBlw_000001_000011.mp4",
    )
    cfg = DatasetConfig(source="local", local_path=str(videos))
    with pytest.raises(MissingVideosError, match="val 1 of 18035 present"):
        acquire("kinetics400", cfg, tmp_path / "s")
    cfg.min_present = 0.0
    summary = acquire("kinetics400", cfg, tmp_path / "s")
    assert summary["counts"] == {"val": {"listed": 18035, "present": 1, "missing": 18034}}
    assert summary["split"] is None and summary["classes"] == 400


def _tgz_of(tree: Path, dest: Path, top: str) -> bytes:
    with tarfile.open(dest, "w:gz") as tf:
        tf.add(tree, top)
    return dest.read_bytes()


def test_download_source_ucf101_layout(shared_dir, tmp_path, http_server):
    tree = ucf_tree(shared_dir, tmp_path / "build/UCF-101")
    data = _tgz_of(tree, tmp_path / "UCF101.tar.gz", "UCF-101")
    # A second archive (zip) holds the fourth listed video; tests merging two archives.
    zpath = tmp_path / "extra.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.write(shared_dir / "videos/ucf101/v_Punch_g03_c01.avi", "x/Punch/v_Punch_g09_c01.avi")
    http_server.behaviour.files.update({"/UCF101.tar.gz": data, "/extra.zip": zpath.read_bytes()})
    cfg = DatasetConfig(
        source="download",
        urls=(f"{http_server.url}/UCF101.tar.gz", f"{http_server.url}/extra.zip"),
        sha256={"UCF101.tar.gz": hashlib.sha256(data).hexdigest()},
    )
    out = tmp_path / "source"
    summary = acquire("ucf101", cfg, out, split_dir=small_splits(tmp_path / "splits_in"))
    assert summary["missing"] == 0 and summary["counts"]["test"]["present"] == 2
    got = sorted(p.relative_to(out / "videos").as_posix() for p in (out / "videos").rglob("*.avi"))
    assert got == [
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        "HeadMassage/v_HeadMassage_g02_c05.avi",
        "Punch/v_Punch_g03_c01.avi",
        "Punch/v_Punch_g09_c01.avi",
    ]
    assert (out / "videos/Punch/v_Punch_g03_c01.avi").read_bytes() == (
        shared_dir / "videos/ucf101/v_Punch_g03_c01.avi"
    ).read_bytes()
    assert (out / "downloads/UCF101.tar.gz").exists() and not (out / "extracted").exists()
    assert (out / "missing.txt").read_text() == ""
    # A rerun downloads and extracts nothing again.
    n = len(http_server.behaviour.requests)
    assert acquire("ucf101", cfg, out, split_dir=tmp_path / "splits_in") == summary
    assert len(http_server.behaviour.requests) == n


def test_download_kinetics_shard_and_train_csv(shared_dir, tmp_path, http_server):
    clip = shared_dir / "videos/ucf101/v_Punch_g03_c01.avi"
    shard = tmp_path / "build/train"
    (shard / "abseiling").mkdir(parents=True)
    shutil.copyfile(clip, shard / "a1_000002_000012.mp4")  # flat, as on the CVDF mirror
    shutil.copyfile(clip, shard / "abseiling/b2_000000_000010.mp4")  # sorted by label, unlisted
    http_server.behaviour.files["/train.csv"] = (
        b"label,youtube_id,time_start,time_end,split\nabseiling,a1,2,12,train\n"
    )
    http_server.behaviour.files["/part_0.tar.gz"] = _tgz_of(shard, tmp_path / "p.tar.gz", "train")
    cfg = DatasetConfig(
        source="download",
        urls=(f"{http_server.url}/train.csv", f"{http_server.url}/part_0.tar.gz"),
    )
    out = tmp_path / "s"
    summary = acquire("kinetics400", cfg, out)
    assert summary["counts"]["train"] == {"listed": 1, "present": 1, "missing": 0}
    assert (out / "videos/abseiling/a1_000002_000012.mp4").is_file()
    assert summary["unlisted"] == 1  # b2 kept in its label folder, listed by no csv
    # never fatal for Kinetics: the pretraining split, train, is the one min_present checks
    assert summary["counts"]["val"]["missing"] == 18035
    assert (out / "splits/train.csv").exists()


def test_refusals(tmp_path):
    with pytest.raises(ValueError, match="sstl synthetic"):
        acquire("synthetic", DatasetConfig(source="generate"), tmp_path)
    with pytest.raises(ValueError, match="only exists for synthetic"):
        acquire("ucf101", DatasetConfig(source="generate"), tmp_path)
    with pytest.raises(ValueError, match="urls is empty"):
        acquire("hmdb51", DatasetConfig(source="download"), tmp_path)
    bad = DatasetConfig(urls=("http://127.0.0.1:9/a.rar",), sha256={"b.rar": "0" * 64})
    with pytest.raises(ValueError, match=r"'b\.rar', which is not the file name of any url"):
        acquire("hmdb51", bad, tmp_path)
    with pytest.raises(FileNotFoundError, match="local_path"):
        acquire(
            "ucf101", DatasetConfig(source="local", local_path=str(tmp_path / "nope")), tmp_path
        )


def test_cli(shared_dir, tmp_path):
    videos = ucf_tree(shared_dir, tmp_path / "UCF-101")
    split_dir = small_splits(tmp_path / "splits_in")
    cfg = json.dumps({"source": "local", "local_path": str(videos), "allow_missing": True})
    out = tmp_path / "src"
    argv = ["--dataset", "ucf101", "--cfg", cfg, "--out", str(out), "--split-dir", str(split_dir)]
    assert cli(argv) == 0
    assert json.loads((out / "source.json").read_text())["missing"] == 1
    assert cli([*argv[:3], json.dumps({"source": "local"}), *argv[4:]]) == 2  # config error
    # Through the real entry point: a missing video fails the command with a clear message.
    proc = subprocess.run(
        [sys.executable, "-m", "sstl.cli", "fetch", *argv[:3],
         json.dumps({"source": "local", "local_path": str(videos)}), *argv[4:]],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "1 of 4 videos listed by the ucf101 split 1 files are missing" in proc.stderr
    # a wrong local_path (a folder of something else) fails, with what is there
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(videos, elsewhere / "UCF-101")
    cfg = json.dumps({"source": "local", "local_path": str(elsewhere), "allow_missing": True})
    assert cli([*argv[:3], cfg, *argv[4:]]) == 1
