"""Files every stage writes or fingerprints: atomic writes, checksums, config hashes.

The bottom layer: no other ``sstl`` module is imported here, so data, models, training,
evaluation and the report all use the same definitions. An atomic write goes to a temporary file
in the same folder, is fsynced and renamed over the target, so a crash or ``kill -9`` at any moment
leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in ``chunk``-byte blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def config_hash(data: Any) -> str:
    """Short sha256 of ``data``'s canonical JSON: key order and tuples vs lists do not matter."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk too.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def tmp_name(path: Path) -> Path:
    """The temporary file an atomic write of ``path`` uses: ``.<name>.tmp-<pid>`` beside it."""
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def save_atomic(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj)`` to ``path`` via tmp file + fsync + ``os.replace`` (same folder)."""
    import torch  # only the writers of tensors pay for the import

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    _fsync_dir(path.parent)


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (tmp file + rename) so a crash never leaves half a metrics file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(path)
    try:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.tmp-(?P<pid>\d+)$")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_tmp(folder: str | os.PathLike, *, exclusive: bool = False) -> list[Path]:
    """Delete the temporary files interrupted atomic writes left in ``folder``; return them.

    A ``kill -9`` between writing and renaming leaves ``.<name>.tmp-<pid>`` (and, from older
    versions, ``<name>.json.tmp``). One is removed when its writer is dead: its pid no longer
    exists on this machine. A writer on another node of a shared filesystem cannot be seen from
    here: ``exclusive=True`` says the caller holds the folder's run lock (no one else writes in
    it), so every such file is a leftover. Not recursive.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in sorted(folder.iterdir()):
        m = _TMP_NAME.match(path.name)
        legacy = path.name.endswith(".json.tmp")
        if not (m or legacy) or path.is_dir() or path.is_symlink():
            continue
        if not exclusive and (legacy or pid_alive(int(m["pid"]))):
            continue
        path.unlink(missing_ok=True)
        removed.append(path)
        log.info("removed %s, left by an interrupted save", path)
    return removed
