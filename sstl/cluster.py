"""``sstl cluster``: GPU partitions (free / total GPUs) and this workflow's Slurm jobs.

Reads the Slurm CLI by default: per-node records from ``scontrol show nodes --json`` (Slurm 23.02
and later; 24.11's ``sinfo --json`` lists partition groups, not nodes), ``sinfo --json`` (older
Slurm), or format strings where no JSON plugin is built. ``--pyslurm`` reads the same through
pyslurm instead (the optional ``sstl[slurm]`` extra; PyPI's pyslurm builds only against Slurm
25.11).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
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


def gpu_count(gres: str | Mapping[str, Any] | None) -> int:
    """GPUs in a GRES string (``gpu:2``, ``gpu:a100:4(S:0-1)``, ``gpu:0(IDX:N/A)`` -> 2, 4, 0) or
    in pyslurm's GRES mapping (``{"gpu:a100": 4, "mps": 100}`` -> 4; allocated GRES may give
    ``{"gpu": {"count": 2, "indexes": "0-1"}}`` -> 2)."""
    if isinstance(gres, Mapping):
        total = 0
        for name, value in gres.items():
            if str(name).split(":", 1)[0] != "gpu":
                continue
            count = value.get("count", 0) if isinstance(value, Mapping) else value
            total += int(count or 0)
        return total
    return sum(int(m.group(1)) for m in _GRES.finditer(gres or ""))


def _state(state: Any) -> str:
    """A node state as one lower-case string (Slurm >= 23.11 gives a list, ``["IDLE", "DRAIN"]``:
    ``idle+drain``)."""
    if isinstance(state, (list, tuple)):
        return "+".join(str(s).lower() for s in state)
    return str(state or "").lower()


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=30).stdout
    except FileNotFoundError:
        raise SystemExit(f"{cmd[0]} not found: run this on a Slurm login node") from None
    except subprocess.CalledProcessError as err:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.stderr.strip()}") from None


def _json_nodes(cmd: list[str]) -> list[dict[str, Any]] | None:
    """The ``nodes`` list of a Slurm command's JSON output, or None where it has none."""
    try:
        data = json.loads(_run(cmd))
    except (RuntimeError, json.JSONDecodeError):
        return None  # no --json for this command in this Slurm, or no JSON plugin built
    nodes = data.get("nodes") if isinstance(data, dict) else None
    if not isinstance(nodes, list):
        return None  # 23.11+ sinfo: partition groups under "sinfo", not per-node records
    return [
        {
            "name": n["name"],
            "partitions": list(n.get("partitions") or []),
            "gres": n.get("gres") or "",
            "gres_used": n.get("gres_used") or "",
            "state": _state(n.get("state")),
        }
        for n in nodes
    ]


def nodes_from_cli() -> list[dict[str, Any]]:
    """One dict per node: name, partitions, gres, gres_used (GRES strings), state."""
    for cmd in (["scontrol", "show", "nodes", "--json"], ["sinfo", "--json"]):
        nodes = _json_nodes(cmd)
        if nodes is not None:
            return nodes
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


def nodes_from_pyslurm() -> list[dict[str, Any]]:
    """The same through pyslurm; SystemExit naming the fix when it is absent or does not match.

    ``pyslurm.Nodes.load()`` is a name -> Node mapping (a ``MultiClusterMap`` since pyslurm 23.2,
    25.11 included; a plain list of Nodes in 22.5). A Node's ``configured_gres`` and
    ``allocated_gres`` are mappings of GRES name (``gpu``, ``gpu:a100``) to count.
    """
    try:
        import pyslurm  # type: ignore[import-not-found]
    except ImportError:
        raise SystemExit(
            "sstl cluster --pyslurm: pyslurm is not installed (pip install 'sstl[slurm]', "
            "Slurm 25.11 only); without --pyslurm the Slurm commands are used"
        ) from None
    try:
        loaded = pyslurm.Nodes.load()
    except Exception as err:  # pyslurm raises its own RPCError; a build for another Slurm, more
        raise SystemExit(
            f"sstl cluster --pyslurm: pyslurm could not load the nodes ({err}): it must be built "
            f"for this cluster's Slurm; without --pyslurm the Slurm commands are used"
        ) from None
    values = loaded.values() if hasattr(loaded, "values") else loaded
    return [_pyslurm_node(n) for n in values]


def _pyslurm_node(node: Any) -> dict[str, Any]:
    return {
        "name": node.name,
        "partitions": list(node.partitions or []),
        "gres": dict(node.configured_gres or {}),
        "gres_used": dict(getattr(node, "allocated_gres", None) or {}),
        "state": _state(node.state),
    }


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
    parser.add_argument(
        "--pyslurm",
        action="store_true",
        help="read nodes through pyslurm (sstl[slurm], Slurm 25.11) instead of the Slurm commands",
    )
    args = parser.parse_args(argv)
    nodes = nodes_from_pyslurm() if args.pyslurm else nodes_from_cli()
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
