"""Split parsers on the real official files (the packaged copies) and on malformed ones."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from sstl.data import splits
from sstl.data.splits import SplitFormatError


@pytest.mark.parametrize(
    ("split", "n_train", "n_test"), [(1, 9537, 3783), (2, 9586, 3734), (3, 9624, 3696)]
)
def test_ucf101_counts(split, n_train, n_test):
    s = splits.ucf101(splits.official_dir("ucf101"), split)
    assert (len(s.classes), len(s.train), len(s.test)) == (101, n_train, n_test)
    labels = {label for _, label in s.train + s.test}
    assert labels == set(range(101))  # 0-based, every class used


def test_ucf101_quirks_and_labels():
    d = splits.official_dir("ucf101")
    assert b"\r\n" in (d / "trainlist01.txt").read_bytes()  # the copy kept CRLF
    s = splits.ucf101(d, 1)
    assert s.classes[0] == "ApplyEyeMakeup" and s.classes[100] == "YoYo"
    assert s.train[0] == ("ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi", 0)
    hs = s.classes.index("HandstandPushups")
    assert hs == 36  # classInd.txt says 37 (1-based)
    quirky = [(p, lab) for p, lab in s.train if "HandStandPushups" in p]
    assert quirky and all(p.startswith("HandstandPushups/") and lab == hs for p, lab in quirky)
    assert all(not p.endswith("\r") for p, _ in s.train + s.test)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_ucf101_groupwise_protocol(split):
    """Split k tests groups 7(k-1)+1..7k; no group appears in both train and test."""
    s = splits.ucf101(splits.official_dir("ucf101"), split)

    def groups(items):
        return {int(re.search(r"_g(\d\d)_", p).group(1)) for p, _ in items}

    test_groups = groups(s.test)
    assert test_groups == set(range(7 * (split - 1) + 1, 7 * split + 1))
    assert not test_groups & groups(s.train)


@pytest.mark.parametrize("split", [1, 2, 3])
def test_hmdb51_counts_and_70_30(split):
    s = splits.hmdb51(splits.official_dir("hmdb51"), split)
    assert (len(s.classes), len(s.train), len(s.test)) == (51, 3570, 1530)
    assert set(Counter(lab for _, lab in s.train).values()) == {70}
    assert set(Counter(lab for _, lab in s.test).values()) == {30}


def test_hmdb51_sorted_classes_and_paths(shared_dir):
    d = splits.official_dir("hmdb51")
    assert len(list(d.glob("*_test_split?.txt"))) == 153
    raw = (d / "brush_hair_test_split1.txt").read_text()
    assert raw.splitlines()[0].endswith(" ")  # the trailing space is kept in the copy
    s = splits.hmdb51(d, 1)
    expected = (shared_dir / "datasets/hmdb51/classes_sorted.txt").read_text().split()
    assert s.classes == expected == sorted(expected)
    assert s.classes.index("kick") < s.classes.index("kick_ball")
    assert s.train[0] == ("brush_hair/April_09_brush_hair_u_nm_np1_ba_goo_0.avi", 0)
    assert all(p.split("/")[0] == s.classes[lab] for p, lab in s.train + s.test)


def test_kinetics400_validate(shared_dir):
    s = splits.kinetics400(splits.official_dir("kinetics400"))
    assert len(s.classes) == 400 and s.train == [] and s.test == []
    assert len(s.val) == 18035
    assert s.val[0] == (
        "javelin throw/--07WQ2iBlw_000001_000011.mp4",
        s.classes.index("javelin throw"),
    )
    assert not (splits.official_dir("kinetics400") / "test.csv").exists()


def test_kinetics400_train_csv_and_sorted_labels(tmp_path):
    header = "label,youtube_id,time_start,time_end,split\n"
    (tmp_path / "train.csv").write_text(
        header + "zumba,abc,5,15,train\n" + "abseiling,x_y,0,10,train\n"
    )
    (tmp_path / "validate.csv").write_text(header + '"zumba",q-1,120,130,validate\n')
    s = splits.kinetics400(tmp_path)
    assert s.classes == ["abseiling", "zumba"]  # no classes.txt: sorted labels
    assert s.train == [("zumba/abc_000005_000015.mp4", 1), ("abseiling/x_y_000000_000010.mp4", 0)]
    assert s.val == [("zumba/q-1_000120_000130.mp4", 1)]


def test_load_dispatch_and_unknown():
    assert len(splits.load("hmdb51", splits.official_dir("hmdb51"), 2).train) == 3570
    assert splits.load("synthetic", splits.official_dir("ucf101")).classes[0] == "ApplyEyeMakeup"
    with pytest.raises(ValueError, match="allowed: ucf101, hmdb51, kinetics400, synthetic"):
        splits.load("ucf-101", splits.official_dir("ucf101"))
    with pytest.raises(ValueError, match="known: ucf101"):
        splits.official_dir("synthetic")


def _ucf_dir(tmp_path: Path, train: str, test: str = "A/v_A_g01_c01.avi\r\n") -> Path:
    (tmp_path / "classInd.txt").write_bytes(b"1 A\r\n2 B\r\n\r\n")
    (tmp_path / "trainlist01.txt").write_text(train, newline="")
    (tmp_path / "testlist01.txt").write_text(test, newline="")
    return tmp_path


def test_ucf101_blank_lines_ok(tmp_path):
    s = splits.ucf101(_ucf_dir(tmp_path, "\r\nB/v_B_g08_c01.avi 2\r\n\r\n"))
    assert s.train == [("B/v_B_g08_c01.avi", 1)] and s.test == [("A/v_A_g01_c01.avi", 0)]


@pytest.mark.parametrize(
    ("train", "test", "where", "what"),
    [
        ("A/v_A_g08_c01.avi 2\r\n", "A/x.avi\r\n", "trainlist01.txt:1", "disagrees"),
        ("A/a.avi 1\r\nA/b.avi\r\n", "A/x.avi\r\n", "trainlist01.txt:2", "expected"),
        ("A/a.avi 1\r\n", "\r\nC/x.avi\r\n", "testlist01.txt:2", "not a class"),
        ("A/a.avi 1\r\n", "A/a.avi\r\n", "", "both train and test"),
    ],
)
def test_ucf101_malformed(tmp_path, train, test, where, what):
    with pytest.raises(SplitFormatError, match=what) as info:
        splits.ucf101(_ucf_dir(tmp_path, train, test))
    assert where in str(info.value)


def test_hmdb51_malformed(tmp_path):
    (tmp_path / "run_test_split1.txt").write_text("a.avi 1 \nb.avi 3 \n")
    with pytest.raises(SplitFormatError, match=r"run_test_split1.txt:2: expected"):
        splits.hmdb51(tmp_path, 1)
    with pytest.raises(FileNotFoundError, match="test_split2"):
        splits.hmdb51(tmp_path, 2)


def test_kinetics_malformed(tmp_path):
    (tmp_path / "validate.csv").write_text(
        "label,youtube_id,time_start,time_end,split\na,b,1,x,v\n"
    )
    with pytest.raises(SplitFormatError, match=r"validate.csv:2: time_start/time_end"):
        splits.kinetics400(tmp_path)
    (tmp_path / "validate.csv").write_text("label,youtube_id,start\n")
    with pytest.raises(SplitFormatError, match="header lacks time_start, time_end"):
        splits.kinetics400(tmp_path)
