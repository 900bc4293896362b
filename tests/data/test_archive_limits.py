"""Archives that expand too far (bombs) or are damaged: refused with ArchiveError, nothing kept."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from sstl.data import archive_rar, archive_ziptar
from sstl.data.archive import extract
from sstl.data.archive_safety import (
    GIB,
    ArchiveError,
    ArchiveTooLargeError,
    CorruptArchiveError,
    Limits,
    SizeBudget,
)

MB = 1 << 20


def _zeros_zip(path: Path, members: dict[str, int]) -> Path:
    """A zip of runs of zeros (deflate packs 1 MB of zeros into ~1 KB), written streaming."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name, size in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as fh:
                for _ in range(size // MB):
                    fh.write(bytes(MB))
    return path


def _tgz(path: Path, members: dict[str, bytes | int]) -> Path:
    """A tar.gz; an int member is that many zeros, streamed."""
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            if isinstance(data, int):
                info.size = data
                tf.addfile(info, _Zeros(data))
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


class _Zeros(io.RawIOBase):
    def __init__(self, n: int) -> None:
        self.left = n

    def readinto(self, buf) -> int:
        n = min(len(buf), self.left)
        buf[:n] = bytes(n)
        self.left -= n
        return n


@pytest.fixture
def no_writes(monkeypatch):
    """Counts the member bodies zip extraction writes."""
    calls = []
    real = shutil.copyfileobj
    monkeypatch.setattr(
        archive_ziptar.shutil, "copyfileobj", lambda *a: (calls.append(1), real(*a))
    )
    return calls


# --- bombs ------------------------------------------------------------------------------------


def test_zip_bomb_refused_before_anything_is_written(tmp_path, no_writes):
    bomb = _zeros_zip(tmp_path / "bomb.zip", {"a.avi": 160 * MB, "b.avi": 160 * MB})
    assert bomb.stat().st_size < 400_000  # ~300 KB expanding to 320 MB, as in the issue
    parent = tmp_path / "p"
    parent.mkdir()
    with pytest.raises(ArchiveTooLargeError) as err:
        extract(bomb, parent / "out")
    assert err.value.member == "a.avi" and "max_unpack_ratio = 10" in str(err.value)
    assert no_writes == [] and list(parent.iterdir()) == []


def test_tar_gz_bomb_refused_while_listing(tmp_path):
    bomb = _tgz(tmp_path / "bomb.tar.gz", {"a.avi": 100 * MB, "b.avi": 100 * MB})
    parent = tmp_path / "p"
    parent.mkdir()
    with pytest.raises(ArchiveTooLargeError, match="decompression bomb") as err:
        extract(bomb, parent / "out")
    assert err.value.member == "a.avi"  # 100 MB from ~100 KB: past the 64 MB the ratio allows
    assert list(parent.iterdir()) == []


def test_total_limit_is_configurable(tmp_path):
    data = os.urandom(2 * MB)  # incompressible, like video
    z = tmp_path / "videos.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("A/v1.avi", data)
        zf.writestr("A/v2.avi", data)
    with pytest.raises(ArchiveTooLargeError, match=r"max_unpacked_gb = 0\.00293,") as err:
        extract(z, tmp_path / "out", limits=Limits(max_bytes=3 * MB))
    assert err.value.member == "A/v2.avi"
    files = extract(z, tmp_path / "out", limits=Limits(max_bytes=5 * MB))
    assert len(files) == 2


def test_small_text_archives_compress_freely_but_ratio_binds_above_the_floor(tmp_path):
    z = _zeros_zip(tmp_path / "splits.zip", {"splits.txt": 8 * MB})  # ratio ~1000, 8 MB
    assert len(extract(z, tmp_path / "a")) == 1
    with pytest.raises(ArchiveTooLargeError):
        extract(z, tmp_path / "b", limits=Limits(ratio_floor=MB))


def test_defaults_pass_the_real_dataset_archives():
    """Published sizes: UCF101.rar 6.5 GB -> 6.9 GB, HMDB51 2.0 GB -> ~2.1 GB; videos barely
    compress. One Kinetics-400 shard is ~2 GB."""
    limits = Limits()
    for packed, expanded in [(6.5e9, 6.9e9), (2.0e9, 2.1e9), (2.0e9, 2.05e9)]:
        assert limits.allowed(int(packed)) >= expanded
    assert limits.allowed(300_000) < 315 * MB  # the 300 KB -> 315 MB zip
    assert limits.max_bytes == 100 * GIB


def test_rar_listed_sizes_are_held_to_the_limit(rar_tools, tmp_path):
    rar = Path(os.environ.get("SSTL_SHARED", Path(__file__).parents[3] / "shared"))
    rar = rar / "archives" / "rar3-subdirs.rar"
    with pytest.raises(ArchiveTooLargeError) as err:
        extract(rar, tmp_path / "out", limits=Limits(max_bytes=12, ratio_floor=0))
    assert err.value.member in {"sub/with space/long fn.txt", "sub/üȵĩöḋè/file.txt"}
    assert list(tmp_path.iterdir()) == []


def test_rar_header_that_lies_about_sizes_is_caught_on_disk(
    rar_tools, shared_dir, tmp_path, monkeypatch
):
    real = archive_rar._lsar_members
    monkeypatch.setattr(
        archive_rar,
        "_lsar_members",
        lambda a: [m.__class__(m.name, m.kind, m.link, 0) for m in real(a)],
    )
    with pytest.raises(ArchiveTooLargeError):
        extract(
            shared_dir / "archives" / "rar3-subdirs.rar",
            tmp_path / "out",
            limits=Limits(max_bytes=12, ratio_floor=0),
        )
    assert list(tmp_path.iterdir()) == []


def test_extractor_writing_past_the_budget_is_stopped(tmp_path):
    """The watchdog around unar/bsdtar: a tool that keeps writing is killed at the limit."""
    out = tmp_path / "tmp"
    out.mkdir()
    archive = tmp_path / "x.rar"
    archive.write_bytes(bytes(100))
    budget = SizeBudget(archive, Limits(max_bytes=4 * MB, ratio_floor=0))
    writer = (
        "import sys, time\n"
        "with open(sys.argv[1], 'wb') as f:\n"
        "    for _ in range(400):\n"
        "        f.write(bytes(1 << 20)); f.flush(); time.sleep(0.01)\n"
    )
    started = time.monotonic()
    with pytest.raises(ArchiveTooLargeError, match="while extracting"):
        archive_rar._run_watched([sys.executable, "-c", writer, str(out / "big")], out, budget)
    assert time.monotonic() - started < 3.5  # stopped, not left to write 400 MB
    assert (out / "big").stat().st_size < 100 * MB


# --- damaged archives -------------------------------------------------------------------------


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_corrupt_zip_member_is_named(tmp_path, method):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w", method) as zf:
        zf.writestr("A/ok.avi", b"fine" * 100)
        zf.writestr("B/bad.avi", os.urandom(5000))
    raw = bytearray(z.read_bytes())
    at = raw.index(b"B/bad.avi") + len("B/bad.avi") + 100  # inside the member's data
    raw[at : at + 50] = bytes(50)
    z.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError) as err:
        extract(z, tmp_path / "out")
    assert err.value.member == "B/bad.avi" and "Delete it and download it again" in str(err.value)
    assert [p.name for p in tmp_path.iterdir()] == ["a.zip"]


def test_zip_without_central_directory(tmp_path):
    z = tmp_path / "a.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("A/v.avi", os.urandom(20_000))
    z.write_bytes(z.read_bytes()[:12_000])  # a download cut off
    with pytest.raises(CorruptArchiveError, match="central directory"):
        extract(z, tmp_path / "out")


@pytest.mark.parametrize("keep", [0.3, 0.6, 0.95])
def test_truncated_tar_gz(tmp_path, keep):
    members = {f"C{i}/v{i}.avi": os.urandom(40_000) for i in range(5)}
    t = _tgz(tmp_path / "a.tar.gz", members)
    t.write_bytes(t.read_bytes()[: int(t.stat().st_size * keep)])
    with pytest.raises(CorruptArchiveError) as err:
        extract(t, tmp_path / "out")
    assert err.value.member in members, str(err.value)
    assert "EOFError" in err.value.cause or "ReadError" in err.value.cause
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]


def test_tar_gz_cut_inside_its_gzip_header(tmp_path):
    t = tmp_path / "a.tar.gz"
    t.write_bytes(gzip.compress(b"x" * 10_000)[:15])
    with pytest.raises(ArchiveError):
        extract(t, tmp_path / "out")


@pytest.mark.parametrize(
    ("at", "member", "cause"), [(100_000, None, "checksum over all"), (40, None, "before any")]
)
def test_gzip_with_bad_data(tmp_path, at, member, cause):
    t = _tgz(tmp_path / "a.tar.gz", {"A/v.avi": b"v" * 1000, "B/w.avi": os.urandom(200_000)})
    raw = bytearray(t.read_bytes())
    raw[at : at + 100] = b"\xff" * 100
    t.write_bytes(bytes(raw))
    with pytest.raises(CorruptArchiveError) as err:
        extract(t, tmp_path / "out")
    assert err.value.member == member and cause in err.value.cause
    assert [p.name for p in tmp_path.iterdir()] == ["a.tar.gz"]


def _damaged_rar(src: Path, dst: Path, how: str) -> Path:
    raw = bytearray(src.read_bytes())
    if how == "flip":
        raw[77] ^= 0xFF  # inside sub/dir2/file2.txt's (stored) data
    else:
        raw = raw[:150]
    dst.write_bytes(bytes(raw))
    return dst


@pytest.mark.parametrize(
    ("how", "member", "cause"),
    [("flip", "sub/dir2/file2.txt", "checksum"), ("cut", "sub/with space/long fn.txt", "")],
)
def test_damaged_rar_names_the_member(rar_tools, shared_dir, tmp_path, how, member, cause):
    rar = _damaged_rar(shared_dir / "archives" / "rar3-subdirs.rar", tmp_path / "d.rar", how)
    with pytest.raises(CorruptArchiveError) as err:
        extract(rar, tmp_path / "out")
    assert err.value.member == member, str(err.value)
    assert cause in err.value.cause.lower()
    assert [p.name for p in tmp_path.iterdir()] == ["d.rar"]
