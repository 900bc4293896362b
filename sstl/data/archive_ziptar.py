"""Zip and tar(.gz/.bz2/.xz) extraction with the standard library, for :mod:`sstl.data.archive`.

Each extractor lists the members, checks them (:func:`~sstl.data.archive_safety.check_members`
and the size budget) and only then writes into ``tmp``, a fresh folder the caller verifies and
moves into place. A damaged or cut-off archive raises
:class:`~sstl.data.archive_safety.CorruptArchiveError` naming the member where reading failed.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
import zlib
from pathlib import Path

from sstl.data.archive_safety import (
    CorruptArchiveError,
    Member,
    SizeBudget,
    UnsafeArchiveError,
    check_members,
    path_parts,
)

# What the standard library raises on damaged data: bad headers, CRC mismatches, a compressed
# stream that ends early (EOFError), invalid deflate/bzip2/lzma data.
_CORRUPT: tuple[type[Exception], ...] = (
    zipfile.BadZipFile,
    tarfile.TarError,
    EOFError,
    zlib.error,
    OSError,  # gzip.BadGzipFile; see _bad_data
)
try:
    import lzma

    _CORRUPT += (lzma.LZMAError,)
except ImportError:  # Python built without lzma
    pass


def _bad_data(err: Exception) -> bool:
    """Damaged data, as opposed to a real I/O error (disk full, permission) that must surface."""
    return not isinstance(err, OSError) or err.errno is None


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):  # 3: unix; symlink body = target
            target = zf.read(info).decode("utf-8")
            out.append(Member(info.filename, "symlink", target, info.file_size))
        else:
            kind = "dir" if info.is_dir() else "file"
            out.append(Member(info.filename, kind, None, info.file_size))
    return out


def extract_zip(archive: Path, tmp: Path, budget: SizeBudget) -> None:
    """Check every member of the zip ``archive``, then extract it into ``tmp``.

    The listed sizes are binding: zipfile stops each member at its listed size.
    """
    member = None
    try:
        with zipfile.ZipFile(archive) as zf:
            members = _zip_members(zf)
            check_members(archive, members)
            for m in members:
                budget.add(m.name, m.size)
            for info, m in zip(zf.infolist(), members, strict=True):
                member = m.name
                dest = tmp.joinpath(*path_parts(m.name))
                if m.kind == "dir":
                    dest.mkdir(parents=True, exist_ok=True)
                elif m.kind == "file":
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(dest, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
    except UnsafeArchiveError:
        raise
    except _CORRUPT as err:
        if not _bad_data(err):
            raise
        raise CorruptArchiveError(archive, member, f"{type(err).__name__}: {err}") from err
    for m in members:  # links last: no file is ever written through one
        if m.kind == "symlink":
            dest = tmp.joinpath(*path_parts(m.name))
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(m.link, dest)


def _tar_kind(t: tarfile.TarInfo) -> str:
    if t.isdir():
        return "dir"
    if t.issym():
        return "symlink"
    if t.islnk():
        return "hardlink"
    return "file" if t.isfile() else "other"


_FILTER_ERROR = getattr(tarfile, "FilterError", tarfile.TarError)


def extract_tar(archive: Path, tmp: Path, budget: SizeBudget) -> None:
    """Check every member of the tar ``archive``, then extract it into ``tmp``.

    Listing a compressed tar decompresses it; the budget stops a bomb's listing as soon as the
    listed sizes pass the limit, before anything is written.
    """
    infos: list[tarfile.TarInfo] = []
    where: list[str | None] = [None]  # the member being read, for the error message
    phase = ["listing"]

    def tracked():  # extractall takes an iterator: note each member as it is extracted
        phase.append("extracting")
        for t in infos:
            where.append(t.name)
            yield t

    try:
        with tarfile.open(archive) as tf:
            for t in tf:  # header by header: a bomb is refused mid-listing
                infos.append(t)
                where.append(t.name)
                budget.add(t.name, t.size if t.isfile() else 0)
            check_members(
                archive, [Member(t.name, _tar_kind(t), t.linkname or None, t.size) for t in infos]
            )
            try:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, members=tracked(), filter="data")
                else:  # Python < 3.10.12: our checks above are the only ones
                    tf.extractall(tmp, members=tracked())
            except _FILTER_ERROR as err:
                name = getattr(err, "tarinfo", None)
                raise UnsafeArchiveError(
                    archive, name.name if name else "?", f"refused: {err}"
                ) from err
            # tarfile stops at the end-of-archive blocks, before the gzip/bzip2/xz trailer whose
            # checksum covers every member: read to the end so a damaged body cannot pass
            where.append(None)
            phase.append("checksum")
            while tf.fileobj.read(1 << 20):
                pass
    except UnsafeArchiveError:
        raise
    except _CORRUPT as err:
        if not _bad_data(err):
            raise
        note = {
            "listing": " (in it or the header after it)" if infos else " (before any member)",
            "extracting": "",
            "checksum": " (in the checksum over all members)",
        }[phase[-1]]
        raise CorruptArchiveError(archive, where[-1], f"{type(err).__name__}: {err}{note}") from err
