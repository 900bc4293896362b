"""Member safety for :mod:`sstl.data.archive`: the checks before and after extraction.

Before anything is written, every listed member is checked: no absolute path, no ``..``, no link
whose target resolves outside the extraction folder, no member whose path goes through a symlink
(the ``up -> ..`` then ``up/pwned.txt`` attack), no device or fifo. The listed sizes are held to
:class:`Limits` (a decompression bomb is refused before it is written). After extraction the
extracted tree is checked again (links and sizes included), since some listings lack link
targets and a crafted header can lie about a size.
"""

from __future__ import annotations

import os
import re
import stat
from collections import deque
from dataclasses import dataclass
from pathlib import Path


class ArchiveError(RuntimeError):
    """An archive could not be listed or extracted (corrupt, unknown format, tool failed)."""


class ExtractorMissingError(ArchiveError):
    """No program that can read this archive is installed."""


class CorruptArchiveError(ArchiveError):
    """The archive is damaged or cut off; ``member`` is where reading failed."""

    def __init__(self, archive: str | Path, member: str | None, cause: str) -> None:
        where = f" at member {member!r}" if member else ""
        super().__init__(
            f"{archive} is corrupt or cut off{where}: {cause}. Delete it and download it again "
            "(an interrupted or damaged transfer)"
        )
        self.archive, self.member, self.cause = Path(archive), member, cause


class UnsafeArchiveError(ArchiveError):
    """A member would land outside the target folder; nothing was extracted."""

    def __init__(self, archive: str | Path, member: str, reason: str) -> None:
        super().__init__(f"refusing to extract {archive}: member {member!r} {reason}")
        self.archive, self.member, self.reason = Path(archive), member, reason


@dataclass(frozen=True)
class Member:
    """One archive entry; ``link`` is a symlink's target or a hardlink's archive path."""

    name: str
    kind: str  # file | dir | symlink | hardlink | other
    link: str | None = None
    size: int = 0  # expanded bytes, as the archive lists it


GIB = 1 << 30


@dataclass(frozen=True)
class Limits:
    """How far one archive may expand (``datasets.<name>.max_unpacked_gb`` / ``max_unpack_ratio``).

    Videos barely compress (UCF101.rar: 6.5 GB packed, 6.9 GB expanded); a bomb expands
    hundreds of times. The ratio applies beyond ``ratio_floor`` bytes, so small archives of
    text (split files) compress as well as they like.
    """

    max_bytes: int = 100 * GIB
    max_ratio: float = 10.0
    ratio_floor: int = 64 << 20

    def allowed(self, packed: int) -> int:
        return int(min(self.max_bytes, max(self.max_ratio * packed, self.ratio_floor)))


class ArchiveTooLargeError(UnsafeArchiveError):
    """The archive expands beyond its :class:`Limits` (a decompression bomb?); nothing is kept."""


class SizeBudget:
    """Expanded bytes counted against the :class:`Limits` of one archive, member by member."""

    def __init__(self, archive: Path, limits: Limits) -> None:
        self.archive, self.limits = archive, limits
        self.packed = archive.stat().st_size
        self.allowed = limits.allowed(self.packed)
        self.total = 0

    def add(self, member: str, size: int) -> None:
        self.total += max(0, size)
        if self.total > self.allowed:
            raise ArchiveTooLargeError(self.archive, member, self.reason())

    def reason(self) -> str:
        lim = self.limits
        return (
            f"takes the expanded size past {self.allowed:,} bytes ({self.total:,} so far from "
            f"{self.packed:,} packed; limits: max_unpacked_gb = {lim.max_bytes / GIB:.3g}, "
            f"max_unpack_ratio = {lim.max_ratio:g}). A decompression bomb? If the archive is "
            "genuine, raise datasets.<name>.max_unpacked_gb / max_unpack_ratio"
        )


def path_parts(name: str) -> list[str]:
    """The components of an archive path, without empty and ``.`` ones."""
    return [p for p in name.split("/") if p not in ("", ".")]


def _resolve(path: str, links: dict[str, str]) -> list[str] | None:
    """Resolve an archive-relative path through the archive's own symlinks, lexically.

    Returns the final components, or None when the path leaves the archive root, is absolute
    or loops. This is what the filesystem would do once the links exist, without creating them.
    """
    stack: list[str] = []
    todo = deque(path.split("/"))
    hops = 0
    while todo:
        comp = todo.popleft()
        if comp in ("", "."):
            continue
        if comp == "..":
            if not stack:
                return None
            stack.pop()
            continue
        stack.append(comp)
        target = links.get("/".join(stack))
        if target is not None:
            hops += 1
            if hops > 40 or _is_absolute(target):
                return None
            stack.pop()  # a link's target is relative to the link's folder
            todo.extendleft(reversed(target.split("/")))
    return stack


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) is not None


def check_members(archive: str | Path, members: list[Member]) -> None:
    """Raise UnsafeArchiveError for the first member that could write outside the target."""
    links = {
        "/".join(path_parts(m.name)): m.link for m in members if m.kind == "symlink" and m.link
    }
    link_names = {"/".join(path_parts(m.name)) for m in members if m.kind == "symlink"}
    for m in members:
        if _is_absolute(m.name):
            raise UnsafeArchiveError(archive, m.name, "has an absolute path")
        parts = path_parts(m.name.replace("\\", "/"))
        if ".." in parts:
            raise UnsafeArchiveError(archive, m.name, "has a '..' component")
        if not parts:
            raise UnsafeArchiveError(archive, m.name, "has an empty path")
        if m.kind == "other":
            raise UnsafeArchiveError(archive, m.name, "is a device, fifo or other special file")
        for i in range(1, len(parts)):
            if "/".join(parts[:i]) in link_names:
                raise UnsafeArchiveError(
                    archive, m.name, f"goes through the symlink {'/'.join(parts[:i])!r}"
                )
        if m.kind == "symlink" and m.link is not None:
            where = "/".join([*parts[:-1], m.link])
            if _is_absolute(m.link) or _resolve(where, links) is None:
                raise UnsafeArchiveError(
                    archive, m.name, f"links to {m.link!r}, outside the target"
                )
        if m.kind == "hardlink" and (
            m.link is None or _is_absolute(m.link) or _resolve(m.link, links) is None
        ):
            raise UnsafeArchiveError(
                archive, m.name, f"is a hard link to {m.link!r}, outside the target"
            )


def verify_tree(archive: Path, root: Path, budget: SizeBudget | None = None) -> list[Path]:
    """Check an extracted tree (links, special files, and its size against ``budget``, counted
    afresh); return its files and links, relative."""
    found: list[Path] = []
    links: dict[str, str] = {}
    if budget is not None:
        budget.total = 0
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinks
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root)
            st = path.lstat()
            mode = st.st_mode
            if stat.S_ISLNK(mode):
                links[rel.as_posix()] = os.readlink(path)
                found.append(rel)
            elif stat.S_ISREG(mode):
                found.append(rel)
                if budget is not None:
                    budget.add(rel.as_posix(), st.st_size)
            elif not stat.S_ISDIR(mode):
                raise UnsafeArchiveError(archive, rel.as_posix(), "extracted as a special file")
    real_root = root.resolve()
    for rel, target in links.items():
        where = "/".join([*rel.split("/")[:-1], target])
        real = Path(os.path.realpath(root / rel))
        if (
            _is_absolute(target)
            or _resolve(where, links) is None
            or not real.is_relative_to(real_root)
        ):
            raise UnsafeArchiveError(
                archive, rel, f"was extracted as a link to {target!r}, outside the target"
            )
    return sorted(found)
