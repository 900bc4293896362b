"""Safe extraction of zip, tar(.gz/.bz2/.xz) and RAR archives.

Every member is checked BEFORE anything is written: no absolute path, no ``..``, no link whose
target resolves outside the extraction folder, no member whose path goes through a symlink (the
``up -> ..`` then ``up/pwned.txt`` attack), no device or fifo. Extraction goes into a fresh
temporary folder beside the target, the extracted tree is checked again (links included), and
only then moved into the target; on refusal the temporary folder is deleted, so nothing is ever
written outside the target. Zip and tar use the standard library (tar with ``filter="data"``);
RAR uses the packaged ``unar`` (RAR 4, solid too) and ``bsdtar`` (RAR 5), whichever works.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import zipfile
from collections import deque
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

INSTALL_HINT = "apt-get install unar libarchive-tools (or run .ci/install-extractors.sh)"
_TOOL_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}  # bsdtar skips non-ASCII names in the C locale


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


def _parts(name: str) -> list[str]:
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
    links = {"/".join(_parts(m.name)): m.link for m in members if m.kind == "symlink" and m.link}
    link_names = {"/".join(_parts(m.name)) for m in members if m.kind == "symlink"}
    for m in members:
        if _is_absolute(m.name):
            raise UnsafeArchiveError(archive, m.name, "has an absolute path")
        parts = _parts(m.name.replace("\\", "/"))
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


def _verify_tree(archive: Path, root: Path) -> list[Path]:
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


# ---------------------------------------------------------------------------- zip and tar


def _zip_members(zf: zipfile.ZipFile) -> list[Member]:
    out = []
    for info in zf.infolist():
        mode = info.external_attr >> 16
        if info.create_system == 3 and stat.S_ISLNK(mode):  # 3: unix; symlink body = target
            out.append(Member(info.filename, "symlink", zf.read(info).decode("utf-8")))
        else:
            out.append(Member(info.filename, "dir" if info.is_dir() else "file"))
    return out


def _extract_zip(archive: Path, tmp: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = _zip_members(zf)
        check_members(archive, members)
        infos = zf.infolist()
        for info, m in zip(infos, members, strict=True):
            dest = tmp.joinpath(*_parts(m.name))
            if m.kind == "dir":
                dest.mkdir(parents=True, exist_ok=True)
            elif m.kind == "file":
                dest.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as src, open(dest, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
        for m in members:  # links last: no file is ever written through one
            if m.kind == "symlink":
                dest = tmp.joinpath(*_parts(m.name))
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


def _extract_tar(archive: Path, tmp: Path) -> None:
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


# ---------------------------------------------------------------------------- RAR


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, env=_TOOL_ENV, check=False)


def _lsar_members(archive: Path) -> list[Member] | None:
    proc = _run(["lsar", "-j", str(archive)])
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return None
    if proc.returncode != 0 or data.get("lsarError"):
        return None
    out = []
    for e in data.get("lsarContents", []):
        if e.get("XADIsDirectory"):
            kind = "dir"
        elif e.get("XADIsHardLink") or e.get("RAR5RedirectionType") == 4:
            kind = "hardlink"
        elif e.get("XADIsLink"):
            kind = "symlink"
        else:
            kind = "file"
        out.append(Member(e["XADFileName"], kind, e.get("XADLinkDestination")))
    return out


_BSDTAR_LINE = re.compile(
    r"^(?P<type>[-a-z?])[-rwxsStTl?]{9}[+@.]?\s+\d+\s+\S+\s+\S+\s+\d+\s+\S+\s+\d+\s+[\d:]+\s(?P<rest>.*)$"
)


def _bsdtar_members(archive: Path) -> list[Member] | None:
    """``bsdtar -tvf`` parsed; None when bsdtar cannot list it (e.g. solid RAR 4)."""
    proc = _run(["bsdtar", "-tvf", str(archive)])
    if proc.returncode != 0:
        return None
    out = []
    for line in proc.stdout.splitlines():
        m = _BSDTAR_LINE.match(line)
        if not m:
            raise ArchiveError(f"cannot parse bsdtar listing line of {archive}: {line!r}")
        kind = {"d": "dir", "l": "symlink", "h": "hardlink", "-": "file"}.get(m["type"], "other")
        name, link = m["rest"], None
        sep = {"symlink": " -> ", "hardlink": " link to "}.get(kind)
        if sep:
            if name.count(sep) != 1:  # a name containing the separator cannot be split safely
                raise UnsafeArchiveError(archive, name, "has an ambiguous link listing")
            name, link = name.split(sep)
        out.append(Member(name, kind, link))
    return out


def _list_rar(archive: Path) -> tuple[list[Member], str]:
    have_unar = shutil.which("lsar") and shutil.which("unar")
    have_bsdtar = shutil.which("bsdtar")
    if not (have_unar or have_bsdtar):
        raise ExtractorMissingError(f"extracting {archive} needs unar or bsdtar: {INSTALL_HINT}")
    members = _lsar_members(archive) if have_unar else None
    source = "lsar"
    if members is None or any(m.kind == "symlink" and m.link is None for m in members):
        # lsar gives no link target for RAR 4 symlinks; bsdtar's listing does (non-solid only).
        listed = _bsdtar_members(archive) if have_bsdtar else None
        if members is None:
            members, source = listed, "bsdtar"
        elif listed is not None:
            targets = {m.name: m.link for m in listed if m.kind == "symlink"}
            members = [
                Member(m.name, m.kind, m.link or targets.get(m.name)) if m.kind == "symlink" else m
                for m in members
            ]
    if members is None:
        raise ArchiveError(f"neither lsar nor bsdtar can list {archive}: corrupt or not a RAR?")
    return members, source


def _extract_rar(archive: Path, tmp: Path) -> None:
    members, source = _list_rar(archive)
    check_members(archive, members)  # links with an unknown target are checked after extraction
    tools = {
        "unar": ["unar", "-q", "-f", "-D", "-nr", "-k", "skip", "-o", str(tmp), str(archive)],
        "bsdtar": ["bsdtar", "-x", "-f", str(archive), "-C", str(tmp)],
    }
    order = ["unar", "bsdtar"] if source == "lsar" else ["bsdtar", "unar"]
    errors = []
    for tool in order:
        if not shutil.which(tool):
            errors.append(f"{tool}: not installed")
            continue
        proc = _run(tools[tool])
        if proc.returncode == 0:
            return
        errors.append(f"{tool}: {(proc.stderr or proc.stdout).strip()[-300:]}")
        for child in tmp.iterdir():  # a failed tool may leave a partial tree
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    raise ArchiveError(f"could not extract {archive}: " + "; ".join(errors) + f" ({INSTALL_HINT})")


# ---------------------------------------------------------------------------- entry point


def _extract_any(archive: Path, tmp: Path) -> None:
    with open(archive, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"Rar!\x1a\x07"):
        _extract_rar(archive, tmp)
    elif zipfile.is_zipfile(archive):
        _extract_zip(archive, tmp)
    elif tarfile.is_tarfile(archive):
        _extract_tar(archive, tmp)
    else:
        raise ArchiveError(f"{archive}: not a zip, tar or RAR archive (magic {magic!r})")


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


def extract(archive: str | Path, target: str | Path, *, nested: bool = False) -> list[Path]:
    """Extract ``archive`` into ``target`` (created); return the extracted files and links.

    ``nested``: also extract the ``.rar`` files found inside (HMDB51 is a RAR of per-class
    RARs), each into the folder that holds it, then delete them. Raises UnsafeArchiveError
    (nothing written) if any member could land outside ``target``.
    """
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise FileNotFoundError(f"archive not found: {archive}")
    target.parent.mkdir(parents=True, exist_ok=True)
    # Same filesystem as the target (renames, not copies) and never inside it until verified.
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.extract-", dir=target.parent))
    try:
        _extract_any(archive.resolve(), tmp)
        _verify_tree(archive, tmp)
        if nested:
            for inner in sorted(tmp.rglob("*.rar")):
                if inner.is_file() and not inner.is_symlink():
                    extract(inner, inner.parent, nested=True)
                    inner.unlink()
        files = _verify_tree(archive, tmp)
        target.mkdir(exist_ok=True)
        _merge(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("extracted %d files from %s into %s", len(files), archive, target)
    return [target / rel for rel in files]
