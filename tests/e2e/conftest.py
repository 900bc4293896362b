"""End-to-end runs of the real workflow in throw-away workspaces (slow: minutes each)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def workspace_copy(dst: Path) -> Path:
    """Copy the checkout's tracked and untracked-but-not-ignored files (what a clone would have
    plus uncommitted work) into ``dst``, as a fresh git repository with one commit."""
    files = (
        subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z"],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, files):
        src = REPO / rel
        if not src.exists() and not src.is_symlink():
            continue  # deleted in the working tree
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    git = ["git", "-c", "user.email=ci@example.invalid", "-c", "user.name=ci"]
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run([*git, "commit", "-qm", "workspace"], cwd=dst, check=True)
    return dst


def snakemake(
    ws: Path, *args: str, timeout: int = 1200, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    # targets must come before options: --configfile / --config take several values
    cmd = ["snakemake", *args, "--cores", "2"]
    proc = subprocess.run(
        cmd,
        cwd=ws,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    if check and proc.returncode != 0:
        logs = (
            "\n".join(
                f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted((ws / "logs").rglob("*.log"))
            )
            if (ws / "logs").exists()
            else ""
        )
        raise AssertionError(
            f"{' '.join(cmd)} failed ({proc.returncode})\n{proc.stdout[-4000:]}\n"
            f"{proc.stderr[-6000:]}\n{logs[-12000:]}"
        )
    return proc


def job_counts(dry_run_output: str) -> dict[str, int]:
    """Parse Snakemake's "Job stats" table of a dry run: rule -> count (empty: nothing to do)."""
    counts: dict[str, int] = {}
    lines = dry_run_output.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Job stats:"):
            for row in lines[i + 3 :]:
                parts = row.split()
                if len(parts) != 2 or parts[0] == "total":
                    break
                counts[parts[0]] = int(parts[1])
            break
    return counts


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(path: Path, timeout: float) -> bool:
    end = time.time() + timeout
    while time.time() < end:
        if path.exists():
            return True
        time.sleep(0.5)
    return False


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The tiny config run end to end locally, once per session."""
    ws = workspace_copy(tmp_path_factory.mktemp("tiny"))
    snakemake(ws, "--configfile", "config/tiny.yaml")
    yield ws
