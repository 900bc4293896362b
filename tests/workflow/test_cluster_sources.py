"""Where ``sstl cluster`` reads nodes from: each Slurm version's JSON, format strings, pyslurm.

The command outputs are trimmed copies of what Slurm 22.05 (Debian 12) and 24.11 (Debian 13) print
for the test cluster of ``.ci/slurm-up.sh`` / ``.ci/slurm-current-up.sh``. pyslurm cannot be
installed here (PyPI's builds need Slurm 25.11), so a stand-in module with pyslurm's data shapes
takes its place: ``Nodes.load()`` a name -> Node mapping (pyslurm's ``MultiClusterMap``, 23.2 to
25.11) or a list (22.5), GRES as mappings of name to count (``pyslurm.utils.cstr.to_gres_dict``).
"""

from __future__ import annotations

import json
import sys
import types
from typing import Any

import pytest

from sstl import cluster

# --- the Slurm commands, per version ---------------------------------------------------------

SINFO_2205 = {  # sinfo --json, Slurm 22.05: one record per node
    "meta": {"Slurm": {"release": "22.05.8"}},
    "errors": [],
    "nodes": [
        {"name": "g1", "partitions": ["gpu"], "gres": "gpu:4", "gres_used": "gpu:1(IDX:0)",
         "state": "mixed", "cpus": 32},
        {"name": "c1", "partitions": ["cpu"], "gres": "", "gres_used": "", "state": "idle"},
    ],
}  # fmt: skip
SINFO_2411 = {  # sinfo --json, Slurm 24.11: partition groups, no per-node records
    "sinfo": [
        {"node": {"state": ["MIXED"]}, "nodes": {"nodes": ["g1"], "total": 1},
         "gres": {"total": "gpu:4", "used": "gpu:1(IDX:0)"}, "partition": {"name": "gpu"}},
        {"node": {"state": ["IDLE"]}, "nodes": {"nodes": ["c1"], "total": 1},
         "gres": {"total": "", "used": ""}, "partition": {"name": "cpu"}},
    ],
    "meta": {"slurm": {"release": "24.11.5"}},
    "errors": [],
    "warnings": [],
}  # fmt: skip
SCONTROL_2411 = {  # scontrol show nodes --json, Slurm 24.11: states are lists
    "nodes": [
        {"name": "g1", "partitions": ["gpu"], "gres": "gpu:4", "gres_used": "gpu:1(IDX:0)",
         "state": ["MIXED"]},
        {"name": "c1", "partitions": ["cpu"], "gres": "", "gres_used": "",
         "state": ["IDLE", "DRAIN"]},
    ],
    "last_update": {"set": True, "number": 1796406523},
    "meta": {"slurm": {"release": "24.11.5"}},
    "errors": [],
    "warnings": [],
}  # fmt: skip
FORMAT = "g1|gpu*|gpu:4|gpu:1(IDX:0)|mix\nc1|cpu|(null)|(null)|idle\n"  # sinfo -O, no JSON


def fake_run(outputs: dict[str, Any]):
    """``cluster._run`` answering from ``outputs`` (command -> JSON / text); a missing command
    fails as Slurm does when an option is unknown."""

    def run(cmd: list[str]) -> str:
        key = " ".join(cmd[:3]) if cmd[0] == "scontrol" else " ".join(cmd[:2])
        if key not in outputs:
            raise RuntimeError(f"{' '.join(cmd)} failed: unrecognized option")
        out = outputs[key]
        return out if isinstance(out, str) else json.dumps(out)

    return run


def _gpu(nodes: list[dict[str, Any]]) -> tuple[int, int, list[str]]:
    (gpu,) = [p for p in cluster.partitions(nodes) if p.name == "gpu"]
    return gpu.gpus_total, gpu.gpus_free, gpu.nodes


@pytest.mark.parametrize(
    "outputs",
    [
        pytest.param({"sinfo --json": SINFO_2205}, id="22.05"),
        pytest.param(
            {"scontrol show nodes": SCONTROL_2411, "sinfo --json": SINFO_2411}, id="24.11"
        ),
        pytest.param({"sinfo -h": FORMAT}, id="no-json"),
    ],
)
def test_cli_nodes_for_each_slurm_version(monkeypatch, outputs):
    monkeypatch.setattr(cluster, "_run", fake_run(outputs))
    nodes = cluster.nodes_from_cli()
    assert [n["name"] for n in nodes] == ["g1", "c1"]
    assert _gpu(nodes) == (4, 3, ["g1"])
    assert nodes[0]["state"] in ("mixed", "mix")


def test_cli_24_11_node_state_list_is_one_string(monkeypatch):
    monkeypatch.setattr(cluster, "_run", fake_run({"scontrol show nodes": SCONTROL_2411}))
    states = {n["name"]: n["state"] for n in cluster.nodes_from_cli()}
    assert states == {"g1": "mixed", "c1": "idle+drain"}
    parts = {p.name: p for p in cluster.partitions(cluster.nodes_from_cli(), gpu_only=False)}
    assert parts["cpu"].states == {"idle+drain"}


# --- pyslurm, through a stand-in with its data shapes ------------------------------------------


class StandInNode:
    """The attributes of ``pyslurm.Node`` that sstl reads, with pyslurm's value types."""

    def __init__(self, name, partitions, configured_gres, allocated_gres, state):
        self.name = name
        self.partitions = partitions  # list[str]
        self.configured_gres = configured_gres  # {"gpu:a100": 4, "mps": 200}
        self.allocated_gres = allocated_gres  # {"gpu:a100": {"count": 3, "indexes": "0-2"}}
        self.state = state  # "MIXED", "IDLE+DRAIN"


class StandInMultiClusterMap:
    """``pyslurm.xcollections.MultiClusterMap``: ``{cluster: {name: Node}}``; iterating gives
    names, ``values()`` Nodes, ``items()`` (name, Node) pairs."""

    def __init__(self, nodes: list[StandInNode], cluster_name: str = "linux") -> None:
        self.data = {cluster_name: {n.name: n for n in nodes}}

    def __iter__(self):
        return iter(self.keys())

    def keys(self):
        return [k for d in self.data.values() for k in d]

    def values(self):
        return [v for d in self.data.values() for v in d.values()]

    def items(self):
        return [(k, v) for d in self.data.values() for k, v in d.items()]


# what pyslurm's to_gres_dict makes of each node's GRES strings (configured / used)
G1 = StandInNode(  # gpu:a100:4(S:0-1),mps:200 / gpu:a100:3(IDX:0-2)
    "g1", ["gpu", "all"], {"gpu:a100": 4, "mps": 200}, {"gpu:a100": {"count": 3, "indexes": "0-2"}},
    "MIXED",
)  # fmt: skip
G2 = StandInNode(  # gpu:2 / gpu:0(IDX:N/A)
    "g2", ["gpu", "all"], {"gpu": 2}, {"gpu": {"count": 0, "indexes": "N/A"}}, "IDLE"
)
G3 = StandInNode(  # gpu:h100:8,gpu:l4:2,shard:16 / gpu:h100:8(IDX:0-7),gpu:l4:1(IDX:1)
    "g3", ["big"], {"gpu:h100": 8, "gpu:l4": 2, "shard": 16},
    {"gpu:h100": {"count": 8, "indexes": "0-7"}, "gpu:l4": {"count": 1, "indexes": "1"}},
    "ALLOCATED",
)  # fmt: skip
C1 = StandInNode("c1", ["cpu", "all"], {}, {}, "IDLE+DRAIN")
PYSLURM_NODES = [G1, G2, G3, C1]


def install_pyslurm(monkeypatch, load) -> None:
    module = types.ModuleType("pyslurm")
    module.Nodes = types.SimpleNamespace(load=load)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyslurm", module)


@pytest.mark.parametrize(
    "collection",
    [
        pytest.param(
            lambda: StandInMultiClusterMap(PYSLURM_NODES), id="MultiClusterMap-23.2-25.11"
        ),
        pytest.param(lambda: list(PYSLURM_NODES), id="list-22.5"),
    ],
)
def test_pyslurm_counts_gpus_from_gres_mappings(monkeypatch, collection):
    install_pyslurm(monkeypatch, collection)
    parts = {p.name: p for p in cluster.partitions(cluster.nodes_from_pyslurm())}
    assert set(parts) == {"gpu", "all", "big"}  # `cpu` has none
    assert (parts["gpu"].gpus_total, parts["gpu"].gpus_used, parts["gpu"].gpus_free) == (6, 3, 3)
    assert (parts["big"].gpus_total, parts["big"].gpus_free) == (10, 1)  # two types add up
    assert parts["all"].nodes == ["g1", "g2", "c1"] and parts["all"].gpus_total == 6
    assert parts["gpu"].states == {"mixed", "idle"}


def test_pyslurm_gives_the_same_as_the_cli(monkeypatch):
    """The same cluster through both paths: the same partition table."""
    monkeypatch.setattr(cluster, "_run", fake_run({"scontrol show nodes": SCONTROL_2411}))
    cli_nodes = cluster.nodes_from_cli()
    same = [
        StandInNode("g1", ["gpu"], {"gpu": 4}, {"gpu": {"count": 1, "indexes": "0"}}, "MIXED"),
        StandInNode("c1", ["cpu"], {}, {}, "IDLE+DRAIN"),
    ]
    install_pyslurm(monkeypatch, lambda: StandInMultiClusterMap(same))
    table = lambda nodes: [  # noqa: E731
        (p.name, p.gpus_total, p.gpus_free, p.nodes, p.states)
        for p in cluster.partitions(nodes, gpu_only=False)
    ]
    assert table(cluster.nodes_from_pyslurm()) == table(cli_nodes)


@pytest.mark.parametrize(
    ("gres", "gpus"),
    [
        ({"gpu": 2}, 2),
        ({"gpu:a100": 4, "mps": 200}, 4),
        ({"gpu:a100": {"count": 3, "indexes": "0-2"}}, 3),
        ({"gpu:h100": 8, "gpu:l4": 2, "shard": 16}, 10),
        ({"gpus": 3, "gpu_fake": 1}, 0),  # other GRES whose names start with "gpu"
        ({}, 0),
    ],
)
def test_gpu_count_of_pyslurm_mappings(gres, gpus):
    assert cluster.gpu_count(gres) == gpus


def test_pyslurm_missing_or_mismatched_names_the_fix(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyslurm", None)  # import fails
    with pytest.raises(SystemExit, match=r"pyslurm is not installed.*without --pyslurm"):
        cluster.nodes_from_pyslurm()

    def mismatched():
        raise RuntimeError("slurm_load_node: Protocol version has changed")

    install_pyslurm(monkeypatch, mismatched)
    with pytest.raises(SystemExit, match=r"could not load the nodes \(slurm_load_node.*this clus"):
        cluster.nodes_from_pyslurm()


def test_cli_is_the_default_and_pyslurm_is_asked_for(monkeypatch, capsys):
    """Without --pyslurm an installed pyslurm is not touched; with it, the Slurm CLI is not."""
    calls: list[str] = []
    monkeypatch.setattr(cluster, "_run", fake_run({"scontrol show nodes": SCONTROL_2411}))
    monkeypatch.setattr(cluster, "workflow_jobs", lambda workdir: [])
    install_pyslurm(monkeypatch, lambda: calls.append("pyslurm") or StandInMultiClusterMap([]))
    assert cluster.cli(["--json"]) == 0
    assert calls == [] and json.loads(capsys.readouterr().out)["partitions"][0]["name"] == "gpu"
    monkeypatch.setattr(cluster, "_run", fake_run({}))  # any Slurm command would fail now
    assert cluster.cli(["--json", "--pyslurm"]) == 0
    assert calls == ["pyslurm"] and json.loads(capsys.readouterr().out)["partitions"] == []
