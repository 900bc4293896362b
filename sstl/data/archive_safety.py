"""Member safety for :mod:`sstl.data.archive`: the checks before and after extraction.

Before anything is written, every listed member is checked: no absolute path, no ``..``, no link
whose target resolves outside the extraction folder, no member whose path goes through a symlink
(the ``up -> ..`` then ``up/pwned.txt`` attack), no device or fifo. After extraction the
extracted tree is checked again (links included), since some listings lack link targets.
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


def verify_tree(archive: Path, root: Path) -> list[Path]:
    """Check an extracted tree (links, special files); return its files and links, relative."""
    found: list[Path] = []
    links: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):  # never follows symlinks
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            rel = path.relative_to(root)
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                links[rel.as_posix()] = os.readlink(path)
                found.append(rel)
            elif stat.S_ISREG(mode):
                found.append(rel)
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
