"""dvc.yaml: generated from the Snakemake DAG, committed in sync, and readable by DVC itself."""

from __future__ import annotations

import difflib
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from sstl import dvcgen
from sstl.cli import COMMANDS

REPO = Path(__file__).resolve().parents[2]
CONFIGFILE = "config/config.yaml"
# `mkdir -p DIRS && [launch.sh N] sstl COMMAND ...`
CMD = re.compile(r"^mkdir -p (?P<dirs>[^&]+?) && (?:\S*launch\.sh \d+ )?sstl (?P<command>\w+) ")


@pytest.fixture(scope="module")
def generated() -> tuple[str, list[Any]]:
    """(``dvcgen.generate()`` text, the jobs it was made from), run from the repo root like
    ``sstl dvc generate``: the relative config path is what lands in ``params:``."""
    cwd = Path.cwd()
    os.chdir(REPO)
    try:
        text = dvcgen.generate()
        jobs = dvcgen._jobs(Path("Snakefile"), Path(CONFIGFILE), Path("."))
    finally:
        os.chdir(cwd)
    return text, jobs


@pytest.fixture(scope="module")
def stages(generated) -> dict[str, dict[str, Any]]:
    return yaml.safe_load(generated[0])["stages"]


def test_committed_dvc_yaml_is_up_to_date(generated):
    committed = (REPO / "dvc.yaml").read_text()
    if generated[0] != committed:
        diff = difflib.unified_diff(
            committed.splitlines(), generated[0].splitlines(), "dvc.yaml", "generated", lineterm=""
        )
        pytest.fail(
            "dvc.yaml is out of date with the Snakemake workflow: run `sstl dvc generate`\n"
            + "\n".join(list(diff)[:40])
        )


def test_one_stage_per_job(generated, stages):
    names = {dvcgen._stage_name(j) for j in generated[1]}
    assert len(names) == len(generated[1]), "two jobs map to the same stage name"
    assert set(stages) == names


def test_commands_make_their_folders_and_run_sstl(stages):
    for name, stage in stages.items():
        m = CMD.match(stage["cmd"])
        assert m, (
            f"{name}: cmd does not start with `mkdir -p ... && sstl <command>`: {stage['cmd']}"
        )
        rule = name.split("-", 1)[0]
        assert m.group("command") == rule, f"{name} runs `sstl {m.group('command')}`"
        assert rule in COMMANDS, f"`sstl {rule}` is not a command of sstl.cli"
        made = set(m.group("dirs").split())
        for out in stage["outs"] + stage.get("metrics", []):
            parent = str(Path(out).parent)
            assert parent == "." or parent in made, f"{name}: mkdir misses {parent} ({out})"


def _lookup(config: dict[str, Any], dotted: str) -> bool:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def test_params_name_existing_config_keys(stages, configs):
    for name, stage in stages.items():
        for entry in stage.get("params", []):
            assert list(entry) == [CONFIGFILE], f"{name}: params read {list(entry)}"
            missing = [k for k in entry[CONFIGFILE] if not _lookup(configs["config"], k)]
            assert not missing, f"{name}: params name keys absent from {CONFIGFILE}: {missing}"
    # the training stages depend on the leaf keys of their sections
    assert any(name.startswith("pretrain-") for name in stages)
    pretrain = stages["pretrain-sstl_seed0"]["params"][0][CONFIGFILE]
    assert (
        "pretrain.optim.lr" in pretrain
        and "seed" in pretrain
        and "finetune.dropout" not in pretrain
    )


def test_a_change_to_one_experiment_touches_only_its_stages(stages):
    """Params are leaf keys: an experiment's override is a param of that experiment's stages
    only, never of another experiment's, and no stage depends on a whole section."""
    by_stage = {
        name: set(s.get("params", [{}])[0].get(CONFIGFILE, [])) for name, s in stages.items()
    }
    key = "experiments.sstl_no_temp.pretrain.temporal.buffer"  # set in config/config.yaml
    touched = sorted(name for name, keys in by_stage.items() if key in keys)
    assert touched == [f"pretrain-sstl_no_temp_seed{s}" for s in range(3)]  # its replicas
    shared = "pretrain.temporal.buffer"  # a base setting: every experiment that pretrains
    assert {n for n, keys in by_stage.items() if shared in keys} == {
        f"pretrain-{e}_seed{s}" for e in ("sstl", "sstl_no_temp") for s in range(3)
    }
    for name, keys in by_stage.items():
        assert not keys & {"experiments", "pretrain", "finetune", "retrieval", "analysis"}, name
        rule, *wildcards = name.split("-")
        if rule in ("pretrain", "finetune", "evaluate", "retrieve", "analyse"):
            others = {k.split(".")[1] for k in keys if k.startswith("experiments.")}
            exp = re.sub(r"_seed\d+$", "", wildcards[0])  # a replica reads its experiment's
            assert others <= {exp}, (name, others)  # the report reads every experiment


def test_deps_exist_or_are_produced(stages):
    produced = {p for s in stages.values() for p in s["outs"] + s.get("metrics", [])}
    for name, stage in stages.items():
        code = [d for d in stage["deps"] if d.startswith("sstl/")]
        assert code, f"{name}: no code dependency"
        absent = [d for d in code if not (REPO / d).exists()]
        assert not absent, f"{name}: code deps that do not exist: {absent}"
        for dep in stage["deps"]:
            assert dep in code or dep in produced, f"{name}: dep {dep} is made by no stage"


def test_code_deps_follow_the_imports():
    # the command's module, what it imports at any depth (function-level imports too), the
    # packages' __init__ files on the way, and the data files it reads
    pretrain = dvcgen.rule_code_deps("pretrain")
    for f in ("sstl/train/pretrain.py", "sstl/method.py", "sstl/memory.py", "sstl/losses.py"):
        assert f in pretrain, f
    assert "sstl/train/__init__.py" in pretrain and "sstl/__init__.py" in pretrain
    assert "sstl/eval/retrieval.py" in dvcgen.rule_code_deps("retrieve")
    for rule in ("retrieve", "analyse", "evaluate"):  # evaluation never runs training code
        assert not any(f.startswith("sstl/train/") for f in dvcgen.rule_code_deps(rule)), rule
    report = dvcgen.rule_code_deps("report")
    assert "sstl/report/paper.yaml" in report and "sstl/report/notes.md" in report
    assert not any(f.startswith(("sstl/train/", "sstl/models/")) for f in report)
    assert dvcgen.rule_code_deps("no-such-rule") == []
    # closed under import: every sstl module a listed file imports is listed
    for rule in ("pretrain", "finetune", "evaluate", "retrieve", "analyse", "fetch"):
        deps = set(dvcgen.rule_code_deps(rule))
        for f in (d for d in deps if d.endswith(".py")):
            for name in dvcgen._imports(REPO / f):
                path = dvcgen._module_file(name)
                if path is not None:
                    assert str(path.relative_to(REPO)) in deps, f"{rule}: {f} imports {name}"


def test_outs_cover_every_snakemake_output(generated, stages):
    for job in generated[1]:
        stage = stages[dvcgen._stage_name(job)]
        declared = stage["outs"] + stage.get("metrics", [])
        assert len(declared) == len(set(declared)), f"{job}: an out is declared twice"
        wanted = [str(f) for f in job.output] + [str(f) for f in job.log]
        missing = [f for f in wanted if f not in declared]
        assert not missing, f"{dvcgen._stage_name(job)}: outputs not in outs/metrics: {missing}"
        for metric in stage.get("metrics", []):
            assert metric.endswith(".json"), metric


def test_dvc_reads_the_file():
    dvc = Path(sys.executable).parent / "dvc"
    cmd = [str(dvc) if dvc.exists() else "dvc", "dag", "--md"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    committed = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    absent = [name for name in committed if f'"{name}"' not in proc.stdout]
    assert not absent, f"`dvc dag` lacks stages {absent}:\n{proc.stdout[:2000]}"
    assert "-->" in proc.stdout  # the stages are connected through their deps and outs
