"""Provenance of the report's numbers: git commit, config identity, manifest and checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from sstl.files import sha256_file
from sstl.report.runs import shown
from sstl.runtime import git_info

SHOWN_PAIRS = 10  # same-checksum pairs named in the report (all are counted)


def provenance_of(config: Path | None, manifests: list[Path], spec: dict) -> dict[str, Any]:
    """git commit, config identity and manifest hashes for the tables' provenance lines."""
    cfg: dict[str, Any] = {"hash": spec.get("config_hash")}
    if config is not None:
        cfg |= {"path": str(config), "sha256": sha256_file(config)}
    mans = {
        Path(m).parent.name: {"path": str(m), "sha256": sha256_file(m), **manifest_facts(m)}
        for m in manifests
    }
    return {"git": git_info(), "config": cfg, "manifests": mans}


def manifest_facts(path: str | Path) -> dict[str, Any]:
    """What a dataset column of the report rests on, from its manifest: per split part, the
    videos the split files list, those present (found, decodable or not) and those used
    (status ok); and the train/test pairs whose sources have the same sha256 (a video copied
    into both halves inflates accuracy and retrieval). Empty for a file that is no manifest."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"id", "split", "status", "checksum"} <= set(df.columns):
        return {}
    counts = {
        part: {
            "listed": len(rows),
            "present": int((rows["status"] != "missing").sum()),
            "used": int((rows["status"] == "ok").sum()),
        }
        for part, rows in df.groupby("split", sort=True)
    }
    known = df[df["checksum"] != ""]
    train, test = known[known["split"] == "train"], known[known["split"] != "train"]
    same = train.merge(test, on="checksum", suffixes=("_train", "_test"))
    pairs = sorted(zip(same["id_train"], same["id_test"], strict=True))
    return {
        "counts": counts,
        "same_checksum": len(pairs),
        "same_checksum_pairs": [list(p) for p in pairs[:SHOWN_PAIRS]],
    }


def column_note(label: str, ds: str, facts: dict[str, Any]) -> str:
    """One sentence: how many of the split's videos were present and used in a column."""
    counts = facts.get("counts")
    if not counts:
        return f"Our {label} column ('{ds}'): no manifest given, video counts unknown."
    parts = "; ".join(
        f"{part} {c['present']:,} of {c['listed']:,} present, {c['used']:,} used"
        for part, c in counts.items()
    )
    return f"Our {label} column ('{ds}'), videos listed by its split files: {parts}."


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
