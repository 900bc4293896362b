"""RAR extraction for :mod:`sstl.data.archive` through the packaged ``unar`` and ``bsdtar``.

``unar`` reads RAR 4 (solid too), ``bsdtar`` RAR 5; whichever works is used. The members are
listed (``lsar -j``, else ``bsdtar -tvf``) and checked, their sizes included, before either tool
writes anything; while a tool runs, a watchdog measures what it wrote and stops it past the size
budget (a header may lie). A tool's failure on damaged data names the member it failed on.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from sstl.data.archive_safety import (
    ArchiveError,
    ArchiveTooLargeError,
    CorruptArchiveError,
    ExtractorMissingError,
    Member,
    SizeBudget,
    UnsafeArchiveError,
    check_members,
    path_parts,
)

INSTALL_HINT = "apt-get install unar libarchive-tools (or run .ci/install-extractors.sh)"
_TOOL_ENV = {**os.environ, "LC_ALL": "C.UTF-8"}  # bsdtar skips non-ASCII names in the C locale


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
        size = int(e.get("XADFileSize") or 0)
        out.append(Member(e["XADFileName"], kind, e.get("XADLinkDestination"), size))
    return out


_BSDTAR_LINE = re.compile(
    r"^(?P<type>[-a-z?])[-rwxsStTl?]{9}[+@.]?\s+\d+\s+\S+\s+\S+\s+(?P<size>\d+)\s+\S+\s+\d+\s+[\d:]+\s(?P<rest>.*)$"
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
        out.append(Member(name, kind, link, int(m["size"])))
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
                Member(m.name, m.kind, m.link or targets.get(m.name), m.size)
                if m.kind == "symlink"
                else m
                for m in members
            ]
    if members is None:
        raise ArchiveError(f"neither lsar nor bsdtar can list {archive}: corrupt or not a RAR?")
    return members, source


def _tree_size(root: Path) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:  # the tool renamed or removed it meanwhile
                continue
    return total


def _run_watched(cmd: list[str], tmp: Path, budget: SizeBudget) -> subprocess.CompletedProcess:
    """Run an extractor; stop it when what it wrote passes the budget (a lying header)."""
    with subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_TOOL_ENV
    ) as proc:
        interval = 0.5
        while True:
            try:
                out, err = proc.communicate(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                started = time.monotonic()
                size = _tree_size(tmp)
                # a walk of a large tree is not free: poll at most ~10% of the time
                interval = max(0.5, 10 * (time.monotonic() - started))
                if size > budget.allowed:
                    proc.kill()
                    proc.communicate()
                    budget.total = size
                    raise ArchiveTooLargeError(
                        budget.archive, "(while extracting)", budget.reason()
                    ) from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# unar -q: "  sub/x.txt  (6 B)... Failed! (Wrong checksum)"; bsdtar: "sub/x.txt: Truncated RAR..."
_UNAR_FAIL = re.compile(r"^\s*(?P<member>.+?)\s+\([^()]*\)\.\.\. Failed! \((?P<cause>.*)\)\s*$")
_BSDTAR_FAIL = re.compile(r"^(?!bsdtar: )(?P<member>[^:]+): (?P<cause>.+)$")


def _failed_member(tool: str, output: str) -> tuple[str, str] | None:
    pattern = _UNAR_FAIL if tool == "unar" else _BSDTAR_FAIL
    for line in output.splitlines():
        if m := pattern.match(line):
            return m["member"], m["cause"]
    return None


def _missing_listed(members: list[Member], tmp: Path) -> Member | None:
    """The first listed file the tool did not write (some tools skip a damaged tail quietly)."""
    for m in members:
        if m.kind == "file" and not tmp.joinpath(*path_parts(m.name)).is_file():
            return m
    return None


def extract_rar(archive: Path, tmp: Path, budget: SizeBudget) -> None:
    """Check the members of the RAR ``archive``, then extract it into ``tmp`` (unar or bsdtar)."""
    members, source = _list_rar(archive)
    check_members(archive, members)  # links with an unknown target are checked after extraction
    for m in members:
        budget.add(m.name, m.size)
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
        proc = _run_watched(tools[tool], tmp, budget)
        output = f"{proc.stdout}\n{proc.stderr}"
        if proc.returncode == 0:
            missing = _missing_listed(members, tmp)
            if missing is None:
                return
            raise CorruptArchiveError(
                archive, missing.name, f"listed, but {tool} extracted nothing for it"
            )
        failed = _failed_member(tool, output)
        if failed is not None:
            # damaged data, not a format the tool lacks: never retry with the other tool
            # (bsdtar extracts a RAR 4 member whose checksum fails without a word)
            raise CorruptArchiveError(archive, *failed)
        errors.append(f"{tool}: {output.strip()[-300:]}")
        for child in tmp.iterdir():  # a failed tool may leave a partial tree
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    raise ArchiveError(f"could not extract {archive}: " + "; ".join(errors) + f" ({INSTALL_HINT})")
