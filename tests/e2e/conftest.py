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


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with only the tiny config's data stages run locally (manifest and store):
    what training tests need, in ~20 s instead of the whole tiny run."""
    ws = workspace_copy(tmp_path_factory.mktemp("tiny_data"))
    snakemake(ws, "data/synthetic/manifest.csv", "--configfile", "config/tiny.yaml")
    return ws


def workspace_with_data(src: Path, dst: Path) -> Path:
    """A fresh workspace at ``dst`` holding ``src``'s prepared data (mtimes and Snakemake's
    records kept, so the data stages count as done)."""
    ws = workspace_copy(dst)
    shutil.copytree(src / "data", ws / "data", symlinks=True)
    shutil.copytree(src / ".snakemake" / "metadata", ws / ".snakemake" / "metadata")
    return ws


# --- the local Slurm clusters (.ci/slurm-up.sh: 22.05, .ci/slurm-current-up.sh: 24.11) -------
# Which one answers is PATH's choice (the 24.11 wrappers first on PATH); SLURM_BASE names its
# folder, where the jobcomp log is.


def slurm_base() -> Path:
    return Path(os.environ.get("SLURM_BASE", "/tmp/sstl-slurm"))


def slurm_cluster_up() -> bool:
    if not shutil.which("sinfo"):
        return False
    proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
    return proc.returncode == 0 and any(s in proc.stdout for s in ("idle", "mix", "alloc"))


def jobcomp_records() -> dict[str, dict[str, str]]:
    """Finished jobs as Slurm's jobcomp/filetxt plugin wrote them, by job id."""
    path = slurm_base() / "log" / "jobcomp.txt"
    records = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        records[fields["JobId"]] = fields
    return records


def slurm_jobs_of(ws: Path) -> dict[str, list[str]]:
    """Rule -> Slurm job ids (oldest first) of a workflow run in ``ws``, from the Slurm plugin's
    per-job logs (``.snakemake/slurm_logs/rule_<rule>/<wildcards>/<jobid>.log``; run with
    ``--slurm-keep-successful-logs``)."""
    jobs: dict[str, list[str]] = {}
    for log in (ws / ".snakemake" / "slurm_logs").rglob("*.log"):
        rule = log.relative_to(ws / ".snakemake" / "slurm_logs").parts[0].removeprefix("rule_")
        jobs.setdefault(rule, []).append(log.stem)
    return {rule: sorted(ids, key=int) for rule, ids in jobs.items()}


def wait_for_jobcomp(ids: list[str], timeout: float = 30) -> dict[str, dict[str, str]]:
    """The jobcomp records of ``ids`` (written when each job completes)."""
    end = time.time() + timeout
    while True:
        records = jobcomp_records()
        if all(i in records for i in ids) or time.time() > end:
            return records
        time.sleep(1)
