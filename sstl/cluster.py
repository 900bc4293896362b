"""``sstl cluster``: GPU partitions (free / total GPUs) and this workflow's Slurm jobs.

Reads the Slurm CLI (``sinfo`` / ``squeue`` with ``--json`` where the Slurm version offers it,
format strings otherwise). pyslurm is used when it is installed and matches the cluster's Slurm
(the optional ``sstl[slurm]`` extra; PyPI's pyslurm builds only against Slurm 25.11): it is an
optimisation, never a requirement.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sstl.runtime import command_parser

_GRES = re.compile(r"gpu(?::[\w.-]+)?:(\d+)")


@dataclass
class Partition:
    name: str
    gpus_total: int = 0
    gpus_used: int = 0
    nodes: list[str] = field(default_factory=list)
    states: set[str] = field(default_factory=set)

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus_total - self.gpus_used)


def gpu_count(gres: str | None) -> int:
    """GPUs in a GRES string: ``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:0(IDX:N/A)`` -> 2, 4, 0."""
    return sum(int(m.group(1)) for m in _GRES.finditer(gres or ""))


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    except FileNotFoundError:
        raise SystemExit(f"{cmd[0]} not found: run this on a Slurm login node") from None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.stderr.strip()}") from None


def nodes_from_sinfo() -> list[dict[str, Any]]:
    """One dict per (node): name, partitions, gres, gres_used, state."""
    try:
        data = json.loads(_run(["sinfo", "--json"]))
        return [
            {
                "name": n["name"],
                "partitions": n.get("partitions", []),
                "gres": n.get("gres", ""),
                "gres_used": n.get("gres_used", ""),
                "state": str(n.get("state", "")).lower(),
            }
            for n in data.get("nodes", [])
        ]
    except (RuntimeError, json.JSONDecodeError, KeyError):
        pass  # old Slurm without the JSON plugin: fall back to format strings
    out = _run(
        ["sinfo", "-h", "-N", "-O", "NodeHost:|,Partition:|,Gres:|,GresUsed:|,StateCompact:"]
    )
    nodes: dict[str, dict[str, Any]] = {}
    for line in out.splitlines():
        host, part, gres, used, state = (f.strip() for f in line.split("|")[:5])
        node = nodes.setdefault(
            host, {"name": host, "partitions": [], "gres": gres, "gres_used": used, "state": state}
        )
        node["partitions"].append(part.rstrip("*"))
    return list(nodes.values())


def nodes_from_pyslurm() -> list[dict[str, Any]] | None:
    """The same through pyslurm, or None when it is absent or does not match this Slurm."""
    try:
        import pyslurm  # type: ignore[import-not-found]

        nodes = pyslurm.Nodes.load()
    except Exception:  # missing, or built against another Slurm
        return None
    return [
        {
            "name": name,
            "partitions": list(n.partitions),
            "gres": ",".join(n.configured_gres or []),
            "gres_used": ",".join(getattr(n, "allocated_gres", []) or []),
            "state": str(n.state).lower(),
        }
        for name, n in nodes.items()
    ]


def partitions(nodes: list[dict[str, Any]], gpu_only: bool = True) -> list[Partition]:
    parts: dict[str, Partition] = {}
    for node in nodes:
        for name in node["partitions"]:
            p = parts.setdefault(name, Partition(name))
            p.gpus_total += gpu_count(node["gres"])
            p.gpus_used += gpu_count(node["gres_used"])
            p.nodes.append(node["name"])
            p.states.add(node["state"])
    rows = sorted(parts.values(), key=lambda p: p.name)
    return [p for p in rows if p.gpus_total > 0] if gpu_only else rows


def workflow_jobs(workdir: Path) -> list[dict[str, str]]:
    """Jobs of the current user submitted from ``workdir`` by Snakemake (comment ``rule_...``)."""
    user = os.environ.get("USER") or _run(["id", "-un"]).strip()
    out = _run(["squeue", "-h", "-u", user, "-o", "%i|%j|%P|%T|%M|%b|%k|%Z|%R"])
    jobs = []
    for line in out.splitlines():
        jobid, name, part, state, elapsed, gres, comment, wd, reason = line.split("|")[:9]
        if Path(wd).resolve() != workdir.resolve():
            continue
        rule = comment.split("_wildcards_")[0].removeprefix("rule_") if comment else name
        jobs.append(
            {
                "jobid": jobid,
                "rule": rule,
                "partition": part,
                "state": state,
                "elapsed": elapsed,
                "gres": gres,
                "reason": reason,
                "comment": comment,
            }
        )
    return jobs


def render(parts: list[Partition], jobs: list[dict[str, str]]) -> str:
    lines = ["GPU partitions", f"  {'partition':<14}{'free':>6}{'total':>7}  nodes / state"]
    if not parts:
        lines.append("  (no partition has GPUs)")
    for p in parts:
        lines.append(
            f"  {p.name:<14}{p.gpus_free:>6}{p.gpus_total:>7}  "
            f"{len(p.nodes)} / {','.join(sorted(p.states))}"
        )
    lines += ["", f"this workflow's jobs ({len(jobs)})"]
    for j in jobs:
        lines.append(
            f"  {j['jobid']:<10}{j['rule']:<12}{j['partition']:<10}{j['state']:<11}"
            f"{j['elapsed']:>10}  {j['gres']}  {j['reason']}"
        )
    return "\n".join(lines)


def cli(argv: list[str] | None = None) -> int:
    parser = command_parser(
        "sstl cluster",
        "The Slurm cluster as this workflow sees it: GPU partitions with their free and total\n"
        "GPUs, and the jobs this workflow submitted (rule, partition, state, time, GPUs). Reads\n"
        "sinfo and squeue (or pyslurm, when installed and matching the cluster's Slurm).",
        "sstl cluster --workdir . --all-partitions",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path.cwd(),
        help="the workflow's directory (jobs submitted from elsewhere are hidden)",
    )
    parser.add_argument("--all-partitions", action="store_true", help="include CPU-only ones")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    args = parser.parse_args(argv)
    nodes = nodes_from_pyslurm() or nodes_from_sinfo()
    parts = partitions(nodes, gpu_only=not args.all_partitions)
    jobs = workflow_jobs(args.workdir)
    if args.json:
        json.dump(
            {
                "partitions": [
                    {
                        "name": p.name,
                        "gpus_free": p.gpus_free,
                        "gpus_total": p.gpus_total,
                        "nodes": p.nodes,
                        "states": sorted(p.states),
                    }
                    for p in parts
                ],
                "jobs": jobs,
            },
            sys.stdout,
            indent=2,
        )
        print()
    else:
        print(render(parts, jobs))
    return 0
