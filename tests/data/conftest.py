"""Fixtures of the data tests: the real sample videos, broken files, a dataset source, stores."""

from __future__ import annotations

import re
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from sstl.config import StoreConfig
from sstl.data.store import store_ext, write_store

# The six UCF101 samples become a 6-class UCF101-layout dataset: folder = class.
UCF_CLASSES = ["ApplyEyeMakeup", "Basketball", "CliffDiving", "HeadMassage", "Punch", "Shotput"]


def expected_frames(shared_dir: Path) -> dict[str, int]:
    """file name -> decoded frame count, parsed from the table in shared/videos/README.md."""
    table = {}
    for line in (shared_dir / "videos" / "README.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[4].isdigit():
            table[cells[0]] = int(cells[4])
    return table


@pytest.fixture(scope="session")
def sample_videos(shared_dir: Path) -> dict[str, tuple[Path, int]]:
    """'ucf101/v_...avi' -> (path, decoded frames) for every sample in the README table."""
    table = expected_frames(shared_dir)
    assert len(table) == 9, f"README table parsed to {table}"
    return {name: (shared_dir / "videos" / name, n) for name, n in table.items()}


def make_audio_only(path: Path) -> Path:
    """Half a second of a 440 Hz tone as AAC in an .mp4: a media file without video."""
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=44100)
        t = np.arange(22050) / 44100
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        for k in range(0, samples.shape[1], 1024):
            frame = av.AudioFrame.from_ndarray(
                samples[:, k : k + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts, frame.time_base = 44100, k, Fraction(1, 44100)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


@pytest.fixture(scope="session")
def broken_files(tmp_path_factory, shared_dir: Path) -> dict[str, Path]:
    """One file per way a video can fail: kind -> path."""
    root = tmp_path_factory.mktemp("broken")
    punch = (shared_dir / "videos/ucf101/v_Punch_g03_c01.avi").read_bytes()
    basket = (shared_dir / "videos/ucf101/v_Basketball_g01_c02.mp4").read_bytes()
    files = {
        "zero_bytes": root / "zero.avi",
        "truncated_avi": root / "truncated.avi",
        "truncated_m4v": root / "truncated.mp4",
        "text_as_avi": root / "notes.avi",
        "audio_only": root / "audio.mp4",
    }
    files["zero_bytes"].write_bytes(b"")
    files["truncated_avi"].write_bytes(punch[: int(0.3 * len(punch))])
    files["truncated_m4v"].write_bytes(basket[: int(0.3 * len(basket))])
    files["text_as_avi"].write_text("this is not a video\n" * 50)
    make_audio_only(files["audio_only"])
    files["nonexistent"] = root / "no_such_video.avi"
    return files


def _crlf(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode())


@pytest.fixture(scope="session")
def ucf_source(tmp_path_factory, shared_dir: Path) -> Path:
    """A UCF101-layout source: ``videos/<Class>/<file>`` + ``splits/`` (CRLF split files).

    The six real UCF101 samples plus four broken entries: a listed video that is absent, a
    truncated copy, a zero-byte file and a text file named .avi.
    """
    root = tmp_path_factory.mktemp("ucf_source")
    videos = root / "videos"
    real = sorted((shared_dir / "videos" / "ucf101").iterdir())
    rel_of = {}
    for src in real:
        cls = src.name.split("_")[1]
        (videos / cls).mkdir(parents=True, exist_ok=True)
        (videos / cls / src.name).symlink_to(src)
        rel_of[cls] = f"{cls}/{src.name}"
    punch = (shared_dir / "videos/ucf101/v_Punch_g03_c01.avi").read_bytes()
    (videos / "Punch/v_Punch_g99_c01.avi").write_bytes(punch[: int(0.3 * len(punch))])
    (videos / "Shotput/v_Shotput_g99_c01.avi").write_bytes(b"")
    (videos / "HeadMassage/v_HeadMassage_g99_c01.avi").write_text("not a video\n")
    splits = root / "splits"
    splits.mkdir()
    _crlf(splits / "classInd.txt", [f"{i + 1} {c}" for i, c in enumerate(UCF_CLASSES)])
    label = {c: i + 1 for i, c in enumerate(UCF_CLASSES)}
    train = ["ApplyEyeMakeup", "Basketball", "HeadMassage", "Punch"]
    _crlf(
        splits / "trainlist01.txt",
        [f"{rel_of[c]} {label[c]}" for c in train]
        + ["Basketball/v_Basketball_g99_c01.avi 2", "Punch/v_Punch_g99_c01.avi 5"],
    )
    _crlf(
        splits / "testlist01.txt",
        [rel_of["CliffDiving"], rel_of["Shotput"], "Shotput/v_Shotput_g99_c01.avi",
         "HeadMassage/v_HeadMassage_g99_c01.avi"],
    )  # fmt: skip
    return root


@pytest.fixture(scope="session")
def stores(tmp_path_factory, sample_videos) -> dict[str, dict[str, tuple[Path, Path]]]:
    """codec -> sample name -> (source, store file) for three samples of different kinds."""
    names = [
        "ucf101/v_ApplyEyeMakeup_g01_c01.avi",
        "ucf101/v_Basketball_g01_c02.mp4",
        "hmdb51/BASE_Jumping_Compilation_-_Brilliant_dive_f_cm_np1_le_bad_3.mp4",
    ]
    out: dict[str, dict[str, tuple[Path, Path]]] = {}
    for codec in ("h264", "jpeg"):
        root = tmp_path_factory.mktemp(f"store_{codec}")
        out[codec] = {}
        for name in names:
            src = sample_videos[name][0]
            dst = root / (re.sub(r"\W", "_", Path(name).stem) + store_ext(codec))
            write_store(src, dst, StoreConfig(codec=codec))
            out[codec][name] = (src, dst)
    return out


@pytest.fixture(scope="session")
def fill_memalign(tmp_path_factory, c_compiler: str) -> Path:
    """fill_memalign.so: LD_PRELOAD it with $FILL set to choose what x264's memory holds."""
    out = tmp_path_factory.mktemp("shim") / "fill_memalign.so"
    src = Path(__file__).with_name("fill_memalign.c")
    subprocess.run([c_compiler, "-O2", "-shared", "-fPIC", "-o", out, src, "-ldl"], check=True)
    return out
