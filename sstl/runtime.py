"""Process-level helpers every command shares: config input, logging, provenance, seeds, device."""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("sstl")


def parse_cfg(text: str | None) -> dict[str, Any]:
    """The ``--cfg`` argument: inline JSON, ``@file.json``/``@file.yaml``, or nothing ({}).

    ``@file.json`` is read as JSON, not as YAML: YAML 1.1 reads ``1e-05`` as a string.
    """
    from sstl.config.loader import ConfigError

    if not text:
        return {}
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            body = path.read_text()
        except OSError as err:
            raise ConfigError(f"--cfg {text}: cannot read {path} ({err.strerror})") from None
        try:
            data = json.loads(body) if path.suffix.lower() == ".json" else yaml.safe_load(body)
        except (json.JSONDecodeError, yaml.YAMLError) as err:
            raise ConfigError(
                f"--cfg {text}: {path} is not valid {path.suffix[1:]} ({err})"
            ) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ConfigError(f"--cfg is not valid JSON ({err}); pass JSON or @file.yaml") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--cfg must be a mapping, got {type(data).__name__}")
    return data


def command_parser(prog: str, about: str, example: str) -> argparse.ArgumentParser:
    """The parser of one ``sstl`` command, with help written for its user: ``about`` (what the
    command does, what it reads and writes; paragraphs kept as written) and one ``example``
    command line printed under ``example:`` after the options."""
    return argparse.ArgumentParser(
        prog=prog,
        description=about.strip(),
        epilog="example:\n  " + " \\\n    ".join(example.strip().split("\n")),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def cfg_help(section: str) -> str:
    """The help of a command's ``--cfg``: the ``section`` settings of a config file."""
    return (
        f"settings: the {section} section of a config file (keys as in config/config.yaml), as "
        "inline JSON or @file.yaml; keys left out keep their defaults"
    )


class UserError(Exception):
    """A failure the user fixes, not a bug: ``sstl`` prints its message as one line and exits 1
    (no traceback). The message says what is wrong and how to fix it."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)  # Slurm's preemption / time-limit warnings
early_stop_signals: list[int] = []  # received before a training loop took over (catch_stop_signals)


def catch_stop_signals() -> None:
    """Record SIGTERM/SIGUSR1 from the first moment of a training command (before torch is even
    imported), so a preemption during start-up is not lost: the training loop's handler
    (:class:`sstl.train.preempt.Preemption`) takes over and acts on what was recorded."""

    def record(signum: int, frame: object) -> None:
        early_stop_signals.append(signum)

    for sig in STOP_SIGNALS:
        signal.signal(sig, record)


def setup_logging(level: int = logging.INFO) -> None:
    """Log to stderr (the rule redirects it to its log file); rank > 0 logs warnings only."""
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    fmt = f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s"
    logging.basicConfig(
        level=level if rank == 0 else logging.WARNING, format=fmt, stream=sys.stderr, force=True
    )


def git_info(root: str | Path | None = None) -> dict[str, Any]:
    """Commit sha and whether the tree has uncommitted changes (None outside a checkout)."""
    root = Path(root) if root else Path(__file__).resolve().parent.parent

    def run(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=root, capture_output=True, text=True, timeout=10, check=True
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip()

    sha = run("rev-parse", "HEAD")
    status = run("status", "--porcelain", "--untracked-files=no")
    return {"sha": sha, "dirty": None if status is None else bool(status)}


def log_startup(command: str, cfg: Any) -> dict[str, Any]:
    """Log the git sha, dirty flag and the full resolved config; return them for metadata files."""
    info = {"command": command, "git": git_info(), "config": cfg}
    log.info(
        "sstl %s | git %s%s",
        command,
        info["git"]["sha"],
        " (dirty)" if info["git"]["dirty"] else "",
    )
    # where it runs: the first thing to check when a cluster job misbehaves
    env = {
        k: os.environ[k]
        for k in ("SLURM_JOB_ID", "SLURM_PROCID", "CUDA_VISIBLE_DEVICES")
        if k in os.environ
    }
    where = " ".join(f"{k}={v}" for k, v in env.items()) or "no Slurm job, no GPU assignment"
    log.info("host %s, pid %d, %s", socket.gethostname(), os.getpid(), where)
    # CPU results are bit-reproducible only at the same thread count (float sums split by thread);
    # Snakemake sets OMP_NUM_THREADS to a job's threads. Only where the command imported torch:
    # the others would pay its import for a log line.
    torch = sys.modules.get("torch")
    if torch is not None:
        log.info("torch %s, %d CPU threads", torch.__version__, torch.get_num_threads())
    log.info("resolved config:\n%s", json.dumps(cfg, indent=2, sort_keys=True, default=str))
    return info


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed python, numpy and torch; optionally make torch deterministic (CPU bit-exact resumes)."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def resolve_device(name: str = "auto") -> Any:
    """``auto`` picks CUDA when available; asking for ``cuda`` without one is an error."""
    import torch

    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device = 'cuda' but no CUDA device is visible; set device: auto or cpu")
    return torch.device(name)
