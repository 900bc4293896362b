"""Atomic writes and the leftovers of interrupted ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from sstl.files import remove_stale_tmp, write_json

REPO = Path(__file__).resolve().parent.parent


# --- leftovers of interrupted atomic writes ---------------------------------------------------

_KILLED_SAVE = textwrap.dedent(
    """
    import os, signal, sys
    import torch
    from sstl import files
    # die between writing the tmp file and renaming it over the state: kill -9 mid-save
    os.replace = lambda *a: os.kill(os.getpid(), signal.SIGKILL)
    files.save_atomic({"w": torch.zeros(1000)}, sys.argv[1])
    """
)


def _killed_save(path: Path) -> int:
    """Run save_atomic in a child killed by SIGKILL mid-save; return the dead child's pid."""
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_SAVE, str(path)],
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.wait(timeout=120) == -9
    return proc.pid


def test_kill_during_save_leaves_a_tmp_that_cleanup_removes(tmp_path):
    state = tmp_path / "resume.pt"
    state.write_bytes(b"previous state")
    (tmp_path / "notes.tmp").write_text("not ours")
    pid = _killed_save(state)
    left = tmp_path / f".resume.pt.tmp-{pid}"
    assert left.is_file() and left.stat().st_size > 0, sorted(tmp_path.iterdir())
    assert remove_stale_tmp(tmp_path) == [left]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.tmp", "resume.pt"]
    assert state.read_bytes() == b"previous state"


def test_a_live_writers_tmp_is_kept_unless_the_caller_holds_the_folder(tmp_path):
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        mine = tmp_path / f".resume.pt.tmp-{os.getpid()}"
        theirs = tmp_path / f".metrics.json.tmp-{live.pid}"
        legacy = tmp_path / "summary.json.tmp"  # write_json's name before the pid was added
        for p in (mine, theirs, legacy):
            p.write_text("partial")
        assert remove_stale_tmp(tmp_path) == []
        assert sorted(remove_stale_tmp(tmp_path, exclusive=True)) == sorted([mine, theirs, legacy])
    finally:
        live.kill()
        live.wait()
    assert list(tmp_path.iterdir()) == []
    assert remove_stale_tmp(tmp_path / "absent") == []


def test_write_json_goes_through_a_pid_named_tmp(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", lambda a, b: (seen.append(Path(a).name), real_replace(a, b)))
    write_json(tmp_path / "m.json", {"top1": 1.5})
    assert seen == [f".m.json.tmp-{os.getpid()}"]
    assert json.loads((tmp_path / "m.json").read_text()) == {"top1": 1.5}
    assert [p.name for p in tmp_path.iterdir()] == ["m.json"]
