"""Safe extraction of zip, tar(.gz/.bz2/.xz) and RAR archives.

Every member is checked BEFORE anything is written: no absolute path, no ``..``, no link whose
target resolves outside the extraction folder, no member whose path goes through a symlink (the
``up -> ..`` then ``up/pwned.txt`` attack), no device or fifo. Extraction goes into a fresh
temporary folder beside the target, the extracted tree is checked again (links included), and
only then moved into the target; on refusal the temporary folder is deleted, so nothing is ever
written outside the target. Zip and tar use the standard library (tar with ``filter="data"``);
RAR uses the packaged ``unar`` (RAR 4, solid too) and ``bsdtar`` (RAR 5), whichever works.
Each archive may expand only so far (:class:`Limits`: total bytes, and expanded / packed size),
so a decompression bomb is refused before it fills the disk; a damaged or cut-off archive raises
:class:`CorruptArchiveError` naming the member.

This module is the entry point (format dispatch, staging, merge); the checks live in
:mod:`sstl.data.archive_safety`, the extractors in :mod:`sstl.data.archive_ziptar` and
:mod:`sstl.data.archive_rar`.
"""

from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from pathlib import Path

from sstl.data.archive_rar import extract_rar
from sstl.data.archive_safety import (
    ArchiveError,
    CorruptArchiveError,
    Limits,
    SizeBudget,
    verify_tree,
)
from sstl.data.archive_ziptar import extract_tar, extract_zip

log = logging.getLogger(__name__)


def _extract_any(archive: Path, tmp: Path, budget: SizeBudget) -> None:
    with open(archive, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"Rar!\x1a\x07"):
        extract_rar(archive, tmp, budget)
    elif zipfile.is_zipfile(archive):
        extract_zip(archive, tmp, budget)
    elif magic.startswith(b"PK\x03\x04"):  # a zip whose central directory is gone
        raise CorruptArchiveError(archive, None, "zip without a readable central directory")
    elif magic.startswith(_COMPRESSED) or _is_tar(archive):
        extract_tar(archive, tmp, budget)  # a damaged compressed tar fails there, named
    else:
        raise ArchiveError(f"{archive}: not a zip, tar or RAR archive (magic {magic!r})")


# gzip, bzip2, xz: tarfile's compressions (a compressed non-tar fails as a corrupt tar)
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")


def _is_tar(archive: Path) -> bool:
    try:
        return tarfile.is_tarfile(archive)
    except (EOFError, OSError, tarfile.TarError) as err:  # a compressed stream cut very early
        raise CorruptArchiveError(archive, None, f"{type(err).__name__}: {err}") from err


def _merge(src: Path, dst: Path) -> None:
    """Move the tree ``src`` into ``dst``; never writes through a symlink already in ``dst``."""
    for child in src.iterdir():
        out = dst / child.name
        if not os.path.lexists(out):
            os.replace(child, out)
        elif child.is_dir() and not child.is_symlink():
            if out.is_symlink() or not out.is_dir():
                raise ArchiveError(f"cannot extract folder {child.name!r}: {out} is not a folder")
            _merge(child, out)
        elif out.is_dir() and not out.is_symlink():
            raise ArchiveError(f"cannot extract file {child.name!r}: {out} is a folder")
        else:
            os.replace(child, out)


def extract(
    archive: str | Path,
    target: str | Path,
    *,
    nested: bool = False,
    limits: Limits | None = None,
) -> list[Path]:
    """Extract ``archive`` into ``target`` (created); return the extracted files and links.

    ``nested``: also extract the ``.rar`` files found inside (HMDB51 is a RAR of per-class
    RARs), each into the folder that holds it, then delete them. Raises UnsafeArchiveError
    (nothing written) if any member could land outside ``target``, ArchiveTooLargeError when
    the archive (or a nested one) expands past ``limits`` (default :class:`Limits`), and
    CorruptArchiveError when it is damaged or cut off.
    """
    limits = limits or Limits()
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem as the target (renames, not copies) and never inside it until verified.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        budget = SizeBudget(archive, limits)
        _extract_any(archive.resolve(), tmp, budget)
        verify_tree(archive, tmp, budget)  # the sizes written, not the sizes listed
        if nested:
            for inner in sorted(tmp.rglob("*.rar")):
                if inner.is_file() and not inner.is_symlink():
                    extract(inner, inner.parent, nested=True, limits=limits)
                    inner.unlink()
        files = verify_tree(archive, tmp)
        target.mkdir(exist_ok=True)
        _merge(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %d files from %s into %s", len(files), archive, target)
    return [target / rel for rel in files]
