"""What a downloaded file must be: the right kind of file, and the bytes that were downloaded.

:func:`sniff` looks at a file's first bytes: an archive must start with its format's magic (an
HTML login or error page saved under ``UCF101.rar`` is refused), and nothing is ever kept that
starts like an HTML page. :class:`Record` (``<file>.download.json`` beside the download) keeps
what the server said about the file (ETag, Last-Modified, size), so a resume asks for the same
version of it (``If-Range``), and the finished file's size and sha256, so a later run can check
a file it finds before calling it "already present".
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from sstl.files import sha256_file, write_json

log = logging.getLogger(__name__)

# How an archive of each suffix starts (tar: "ustar" at byte 257).
_MAGIC = {
    ".rar": (b"Rar!\x1a\x07",),
    ".zip": (b"PK\x03\x04", b"PK\x05\x06"),
    ".gz": (b"\x1f\x8b",),
    ".tgz": (b"\x1f\x8b",),
    ".bz2": (b"BZh",),
    ".tbz2": (b"BZh",),
    ".xz": (b"\xfd7zXZ\x00",),
    ".txz": (b"\xfd7zXZ\x00",),
}
_HTML = (b"<!doctype html", b"<html", b"<head", b"<body", b"<?xml", b"<!--", b"<title")
HEAD_BYTES = 512


def sniff(name: str, head: bytes) -> str | None:
    """Why ``head`` (a file's first bytes) cannot be the file ``name``; None when it can."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith(_HTML):
        return "an HTML page (a login, error or 'moved' page?)"
    suffix = Path(name).suffix.lower()
    if suffix == ".tar":
        if len(head) >= 262 and head[257:262] != b"ustar":
            return f"not a tar archive (first bytes {head[:16]!r})"
        return None
    magic = _MAGIC.get(suffix)
    if magic and not head.startswith(magic):
        return f"not a {suffix} archive (first bytes {head[:16]!r})"
    return None


def sniff_file(path: Path) -> str | None:
    with open(path, "rb") as fh:
        return sniff(path.name, fh.read(HEAD_BYTES))


@dataclass
class Record:
    """``<file>.download.json``: which version of the file the bytes are, and what they hash to."""

    url: str
    etag: str | None = None  # the server's validators, sent back as If-Range on a resume
    last_modified: str | None = None
    total: int | None = None  # the file's size as the server reported it
    size: int | None = None  # of the finished file
    sha256: str | None = None

    def validator(self) -> str | None:
        """What ``If-Range`` may carry: a strong ETag, else the Last-Modified date."""
        if self.etag and not self.etag.startswith("W/"):
            return self.etag
        return self.last_modified

    @staticmethod
    def path_for(dest: Path) -> Path:
        return dest.with_name(dest.name + ".download.json")

    @classmethod
    def load(cls, dest: Path) -> Record | None:
        path = cls.path_for(dest)
        try:
            data = json.loads(path.read_text())
            return cls(**{f.name: data.get(f.name) for f in dataclasses.fields(cls)})
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:  # cut off by a kill: as good as absent
            log.warning("ignoring unreadable %s (%s)", path, err)
            return None

    def save(self, dest: Path) -> None:
        write_json(self.path_for(dest), dataclasses.asdict(self))


def check_existing(dest: Path, sha256: str | None, record: Record | None) -> str | None:
    """Why the existing ``dest`` is not the file to keep; None when it verifies.

    Checked: its first bytes, then the configured sha256, else the size and sha256 recorded when
    this pipeline downloaded it. A file with neither (placed by hand) passes on its first bytes.
    """
    problem = sniff_file(dest)
    if problem:
        return problem
    if sha256 is not None:
        got = sha256_file(dest)
        return None if got == sha256 else f"its sha256 is {got}, not the expected {sha256}"
    if record is not None and record.sha256:
        size = dest.stat().st_size
        if record.size is not None and size != record.size:
            return f"it has {size} bytes, {record.size} were downloaded"
        if sha256_file(dest) != record.sha256:
            return "its sha256 differs from the one recorded when it was downloaded"
    return None
