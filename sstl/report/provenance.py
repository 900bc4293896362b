"""Provenance of the report's numbers: git commit, config identity, manifest and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sstl.files import sha256_file
from sstl.report.runs import shown
from sstl.runtime import git_info


def provenance_of(config: Path | None, manifests: list[Path], spec: dict) -> dict[str, Any]:
    """git commit, config identity and manifest hashes for the tables' provenance lines."""
    cfg: dict[str, Any] = {"hash": spec.get("config_hash")}
    if config is not None:
        cfg |= {"path": str(config), "sha256": sha256_file(config)}
    mans = {Path(m).parent.name: {"path": str(m), "sha256": sha256_file(m)} for m in manifests}
    return {"git": git_info(), "config": cfg, "manifests": mans}


def config_line(provenance: dict[str, Any]) -> str:
    """How the config is identified: file sha256 (--config) and/or the workflow's config hash."""
    cfg = provenance.get("config") or {}
    parts = []
    if cfg.get("path"):
        parts.append(f"config {cfg['path']} sha256 {cfg['sha256']}")
    if cfg.get("hash"):
        parts.append(f"config hash {cfg['hash']} (sstl.files.config_hash)")
    return "; ".join(parts) or "config not given"


def table_provenance(
    provenance: dict[str, Any], used: set[Path], datasets: set[str], runs_dir: Path
) -> list[str]:
    """A table's provenance lines: git and config, the manifests of ``datasets``, and the
    checkpoint and git commit behind each metrics file in ``used``."""
    git = provenance.get("git") or {}
    dirty = " (dirty tree)" if git.get("dirty") else ""
    lines = [f"git commit {git.get('sha') or 'unknown'}{dirty}; {config_line(provenance)}"]
    manifests = provenance.get("manifests") or {}
    for ds in sorted(datasets):
        m = manifests.get(ds)
        lines.append(
            f"data manifest {ds}: {m['path']} sha256 {m['sha256']}"
            if m
            else f"data manifest {ds}: not given (--manifests)"
        )
    for path in sorted(used, key=str):
        metrics = json.loads(path.read_text())
        sha = (metrics.get("git") or {}).get("sha") or "unknown"
        weights = metrics.get("weights") or {}
        sha256 = weights.get("sha256") or metrics.get("weights_sha256")
        ckpt = (
            f"{weights.get('path', '')} sha256 {sha256}".strip() if sha256 else "none (random init)"
        )
        lines.append(f"{shown(path, runs_dir)}: checkpoint {ckpt}; evaluated at git {sha}")
    return lines
