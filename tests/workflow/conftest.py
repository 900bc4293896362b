"""Fixtures for the workflow tests: configs, a Snakemake runner and its output parsers.

Snakemake runs from a throw-away working directory (``--directory``) so what other runs left in
the checkout (data/, runs/, ...) never changes the job counts. Helpers are handed out as fixtures
because ``--import-mode=importlib`` makes conftest modules unimportable from the tests.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CONFIGS = ("config", "tiny", "paper")


@dataclass
class SnakemakeRun:
    """One finished ``snakemake`` subprocess: its arguments, exit status and combined output."""

    args: list[str]
    workdir: Path
    returncode: int
    output: str

    def describe(self) -> str:
        return f"snakemake {' '.join(self.args)} -> exit {self.returncode}\n{self.output[-4000:]}"


def run_snakemake(args: list[str], workdir: Path, timeout: float = 120) -> SnakemakeRun:
    """``snakemake --snakefile <repo>/Snakefile --directory <workdir> ARGS`` from the repo root."""
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--directory",
        str(workdir),
        *args,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )
    return SnakemakeRun(args, workdir, proc.returncode, proc.stdout + proc.stderr)


def parse_job_stats(output: str) -> dict[str, int]:
    """The ``Job stats:`` table of a dry run as ``{rule: count}`` (without the ``total`` row)."""
    lines = output.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    except StopIteration:
        raise AssertionError(f"no 'Job stats:' table in the output:\n{output[-3000:]}") from None
    stats: dict[str, int] = {}
    for line in lines[start + 3 :]:  # title, header, dashes
        m = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not m or m.group(1) == "total":
            break
        stats[m.group(1)] = int(m.group(2))
    return stats


@functools.cache
def _parsed(name: str) -> dict[str, Any]:
    return yaml.safe_load((REPO / "config" / f"{name}.yaml").read_text())


def load_config(name: str) -> dict[str, Any]:
    """``config/<name>.yaml`` as a plain dict (a fresh copy: edit it freely)."""
    return copy.deepcopy(_parsed(name))


def set_key(config: Mapping[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``config`` with ``a.b.c`` set to ``value`` (missing mappings created)."""
    out = copy.deepcopy(dict(config))
    node = out
    *parents, leaf = dotted.split(".")
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value
    return out


# --- every config key documented ---------------------------------------------------------

# Sections whose keys are names the user picks (experiments, datasets, rules) or a free-form table
# mapping (report): documented by their section comment, not key by key.
_FREE_SUBTREES = {"experiments", "report"}
_NAME_LEVEL = {"datasets", "resources"}


def _key_nodes(node: yaml.Node, path: tuple[str, ...] = ()) -> list[tuple[tuple, Any, Any]]:
    """(path, key node, value node) of every key in block mappings, depth first, in file order."""
    out = []
    if isinstance(node, yaml.MappingNode) and not node.flow_style:
        for key, value in node.value:
            p = (*path, key.value)
            out.append((p, key, value))
            out += _key_nodes(value, p)
    return out


def _is_leaf(value: yaml.Node) -> bool:
    return isinstance(value, yaml.ScalarNode) or bool(getattr(value, "flow_style", False))


def _has_comment(lines: list[str], key: yaml.Node, value: yaml.Node) -> bool:
    """A ``# ...`` after the key's value on its line, or a comment line directly above the key."""
    if _is_leaf(value):
        rest = lines[value.end_mark.line][value.end_mark.column :]
    else:
        rest = lines[key.end_mark.line][key.end_mark.column :]
    if rest.strip().removeprefix(":").strip().startswith("#"):
        return True
    above = key.start_mark.line - 1
    return above >= 0 and lines[above].strip().startswith("#")


def find_uncommented_keys(text: str) -> list[str]:
    """Keys of a config YAML that need a comment and lack one.

    Checked: every top-level key, and every leaf key of a block mapping. A leaf repeated under a
    section of the same name (``finetune.optim.momentum`` after ``pretrain.optim.momentum``) is
    documented once. Not checked: keys inside flow mappings, and the user-named entries under
    ``experiments``, ``report``, ``datasets`` and ``resources``.
    """
    lines = text.splitlines()
    documented: set[tuple[str, str]] = set()
    missing = []
    for path, key, value in _key_nodes(yaml.compose(text)):
        if len(path) > 1:
            if path[0] in _FREE_SUBTREES or (path[0] in _NAME_LEVEL and len(path) == 2):
                continue
            if not _is_leaf(value):
                continue
        commented = _has_comment(lines, key, value)
        suffix = (path[-2] if len(path) > 1 else "", path[-1])
        if commented:
            documented.add(suffix)
        elif suffix not in documented:
            missing.append(f"{'.'.join(path)} (line {key.start_mark.line + 1})")
    return missing


@pytest.fixture(scope="session")
def snakemake() -> Callable[..., SnakemakeRun]:
    return run_snakemake


@pytest.fixture(scope="session")
def job_stats() -> Callable[[str], dict[str, int]]:
    return parse_job_stats


@pytest.fixture
def configs() -> dict[str, dict[str, Any]]:
    """The three committed configs by name (``config``, ``tiny``, ``paper``), fresh per test."""
    return {name: load_config(name) for name in CONFIGS}


@pytest.fixture(scope="session")
def config_loader() -> Callable[[str], dict[str, Any]]:
    """For module-scoped fixtures: ``config_loader("tiny")`` is a fresh copy of config/tiny.yaml."""
    return load_config


@pytest.fixture(scope="session")
def with_key() -> Callable[[Mapping[str, Any], str, Any], dict[str, Any]]:
    return set_key


@pytest.fixture(scope="session")
def uncommented_keys() -> Callable[[str], list[str]]:
    return find_uncommented_keys
