"""Zip and tar(.gz/.bz2/.xz) extraction with the standard library, for :mod:`sstl.data.archive`.

Each extractor lists the members, checks them (:func:`~sstl.data.archive_safety.check_members`)
and only then writes into ``tmp``, a fresh folder the caller verifies and moves into place.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from sstl.data.archive_safety import Member, UnsafeArchiveError, check_members, path_parts


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):  # 3: unix; symlink body = target
            out.append(Member(info.filename, "symlink", zf.read(info).decode("utf-8")))
        else:
            out.append(Member(info.filename, "dir" if info.is_dir() else "file"))
    return out


def extract_zip(archive: Path, tmp: Path) -> None:
    """Check every member of the zip ``archive``, then extract it into ``tmp``."""
    with zipfile.ZipFile(archive) as zf:
        members = _zip_members(zf)
        check_members(archive, members)
        infos = zf.infolist()
        for info, m in zip(infos, members, strict=True):
            dest = tmp.joinpath(*path_parts(m.name))
            if m.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
            elif m.kind == "file":
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
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


def extract_tar(archive: Path, tmp: Path) -> None:
    """Check every member of the tar ``archive``, then extract it into ``tmp``."""
    with tarfile.open(archive) as tf:
        infos = tf.getmembers()
        check_members(archive, [Member(t.name, _tar_kind(t), t.linkname or None) for t in infos])
        try:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(tmp, members=infos, filter="data")
            else:  # Python < 3.10.12: our checks above are the only ones
                tf.extractall(tmp, members=infos)
        except _FILTER_ERROR as err:
            name = getattr(err, "tarinfo", None)
            raise UnsafeArchiveError(
                archive, name.name if name else "?", f"refused: {err}"
            ) from err
