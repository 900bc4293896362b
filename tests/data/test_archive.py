"""Safe extraction: the real RAR samples (unar + bsdtar) and zip / tar.gz built here."""

from __future__ import annotations

import io
import os
import shutil
import stat
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from sstl.data.archive import extract
from sstl.data.archive_safety import ArchiveError, ExtractorMissingError, UnsafeArchiveError

SUBDIR_FILES = {
    "sub/dir1/file1.txt",
    "sub/dir2/file2.txt",
    "sub/with space/long fn.txt",
    "sub/üȵĩöḋè/file.txt",
}


def snapshot(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def archives(shared_dir) -> Path:
    return shared_dir / "archives"


def test_rar3_solid(rar_tools, archives, tmp_path):
    files = extract(archives / "rar3-solid.rar", tmp_path / "out")
    assert [p.name for p in files] == ["stest1.txt", "stest2.txt"]
    assert all(p.stat().st_size == 2048 for p in files)


@pytest.mark.parametrize("name", ["rar3-subdirs.rar", "rar5-subdirs.rar"])  # unar / bsdtar
def test_rar_subdirs_spaces_unicode_empty(rar_tools, archives, tmp_path, name):
    out = tmp_path / "out"
    files = extract(archives / name, out)
    assert {p.relative_to(out).as_posix() for p in files} == SUBDIR_FILES
    assert (out / "sub/empty").is_dir()
    assert (out / "sub/dir1/file1.txt").read_bytes().startswith(b"file1")
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the temp folder is gone


def test_rar_symlink_outside_refused(rar_tools, archives, tmp_path):
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError, match="random_link") as info:
        extract(archives / "rar3-symlink-unix.rar", tmp_path / "out")
    assert info.value.member == "random_link" and "outside" in info.value.reason
    assert snapshot(tmp_path) == before


def test_rar_symlink_checked_after_extraction_when_unlisted(rar_tools, archives, tmp_path):
    """Only unar installed: lsar gives no RAR 4 link target, the post-extraction check refuses."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("unar", "lsar"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    parent = tmp_path / "work"
    parent.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    code = (
        "import sys; from sstl.data.archive import extract\n"
        "from sstl.data.archive_safety import UnsafeArchiveError\n"
        "try: extract(sys.argv[1], sys.argv[2])\n"
        "except UnsafeArchiveError as e: print('REFUSED', e.member, e.reason); sys.exit(3)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code,
         str(archives / "rar3-symlink-unix.rar"), str(parent / "out")],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    assert "REFUSED random_link was extracted as a link to '../random123'" in proc.stdout
    assert list(parent.iterdir()) == []


def test_rar5_symlink_traversal_writes_nothing_outside(rar_tools, archives, tmp_path):
    parent = tmp_path / "parent"
    parent.mkdir()
    (parent / "keep.txt").write_text("x")
    before = snapshot(tmp_path)
    with pytest.raises(UnsafeArchiveError) as info:
        extract(archives / "rar5-evil-symlink-traversal.rar", parent / "out")
    assert info.value.member in ("up", "up/pwned.txt")
    assert snapshot(tmp_path) == before
    assert not any(p.name == "pwned.txt" for p in tmp_path.rglob("*"))


def test_missing_extractor_message(archives, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no unar, lsar or bsdtar on PATH
    with pytest.raises(ExtractorMissingError, match="apt-get install unar libarchive-tools"):
        extract(archives / "rar3-solid.rar", tmp_path / "out")


def _zip(path: Path, entries: list[tuple[str, bytes, int | None]]) -> Path:
    """entries: (name, data, unix mode or None)."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            if mode is not None:
                info.create_system, info.external_attr = 3, mode << 16
            zf.writestr(info, data)
    return path


def _tgz(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tf.addfile(e)
            else:
                info = tarfile.TarInfo(e[0])
                info.size = len(e[1])
                tf.addfile(info, io.BytesIO(e[1]))
    return path


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info


def test_zip_and_tar_good(tmp_path):
    z = _zip(
        tmp_path / "a.zip",
        [
            ("A/v1.avi", b"one", None),
            ("A/", b"", None),
            ("link", b"A/v1.avi", stat.S_IFLNK | 0o777),
        ],
    )
    out = tmp_path / "z"
    files = extract(z, out)
    assert {p.relative_to(out).as_posix() for p in files} == {"A/v1.avi", "link"}
    assert (out / "link").is_symlink() and (out / "link").read_bytes() == b"one"
    t = _tgz(
        tmp_path / "a.tar.gz",
        [("./B/v2.avi", b"two"), _link("B/same", "B/v2.avi", tarfile.LNKTYPE)],
    )
    files = extract(t, out)  # merges into the existing folder
    assert (out / "B/v2.avi").read_bytes() == b"two" and (out / "B/same").read_bytes() == b"two"
    assert (out / "A/v1.avi").exists() and len(files) == 2


@pytest.mark.parametrize(
    ("entries", "member", "reason"),
    [
        ([("../evil", b"x", None)], "../evil", "'..'"),
        ([("/tmp/evil_abs", b"x", None)], "/tmp/evil_abs", "absolute"),
        ([("ok/../../evil", b"x", None)], "ok/../../evil", "'..'"),
        ([("out", b"../../etc", stat.S_IFLNK | 0o777)], "out", "outside"),
        ([("abs", b"/etc/passwd", stat.S_IFLNK | 0o777)], "abs", "outside"),
        (
            [("up", b".", stat.S_IFLNK | 0o777), ("u2", b"up/..", stat.S_IFLNK | 0o777)],
            "u2",
            "outside",
        ),
        (
            [("up", b"sub", stat.S_IFLNK | 0o777), ("up/x", b"x", None)],
            "up/x",
            "through the symlink",
        ),
    ],
)
def test_zip_malicious(tmp_path, entries, member, reason):
    parent = tmp_path / "p"
    parent.mkdir()
    z = _zip(tmp_path / "evil.zip", entries)
    with pytest.raises(UnsafeArchiveError, match=reason) as info:
        extract(z, parent / "out")
    assert info.value.member == member
    assert list(parent.iterdir()) == []


@pytest.mark.parametrize(
    ("entries", "member", "reason"),
    [
        ([("../evil", b"x")], "../evil", "'..'"),
        ([("/abs_evil", b"x")], "/abs_evil", "absolute"),
        ([_link("l", "../../outside")], "l", "outside"),
        ([_link("l", "/etc")], "l", "outside"),
        ([_link("up", ".."), ("up/pwned.txt", b"x")], "up", "outside"),
        ([_link("d", "sub"), ("d/pwned.txt", b"x")], "d/pwned.txt", "through"),
        ([_link("h", "../x", tarfile.LNKTYPE)], "h", "hard link"),
        ([_link("fifo", "", tarfile.FIFOTYPE)], "fifo", "special"),
    ],
)
def test_tar_malicious(tmp_path, entries, member, reason):
    parent = tmp_path / "p"
    parent.mkdir()
    t = _tgz(tmp_path / "evil.tar.gz", entries)
    with pytest.raises(UnsafeArchiveError, match=reason) as info:
        extract(t, parent / "out")
    assert info.value.member == member
    assert list(parent.iterdir()) == []


def test_not_an_archive(tmp_path):
    (tmp_path / "x.rar").write_bytes(b"hello, not an archive")
    with pytest.raises(ArchiveError, match="not a zip, tar or RAR"):
        extract(tmp_path / "x.rar", tmp_path / "out")


def test_nested_rar_of_rars(rar_tools, archives, tmp_path):
    """HMDB51 is a RAR of per-class RARs. No RAR writer is installed, so the outer archive here
    is a tar holding the real RAR samples; the inner ones go through unar and bsdtar."""
    outer = tmp_path / "outer.tar"
    with tarfile.open(outer, "w") as tf:
        tf.add(archives / "rar3-solid.rar", "rar3-solid.rar")
        tf.add(archives / "rar5-subdirs.rar", "cls/rar5-subdirs.rar")
    out = tmp_path / "out"
    files = extract(outer, out, nested=True)
    rel = {p.relative_to(out).as_posix() for p in files}
    assert rel == {"stest1.txt", "stest2.txt"} | {f"cls/{f}" for f in SUBDIR_FILES}
    assert not list(out.rglob("*.rar"))
