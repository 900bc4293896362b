"""What pyproject.toml declares is what the code imports: a fresh `pip install sstl` runs every
command, `pip install 'sstl[dev]'` runs every test, and optional extras stay optional."""

from __future__ import annotations

import ast
import functools
import importlib.metadata as md
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

REPO = Path(__file__).resolve().parents[1]
# Imports whose distribution is not installed here (so importlib.metadata cannot name it).
NOT_INSTALLED = {"pyslurm": "pyslurm"}
# Modules of one distribution that need another to work (torch's TensorBoard writer).
NEEDS = {"torch.utils.tensorboard": "tensorboard"}


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalise(re.match(r"[A-Za-z0-9._-]+", r).group(0)) for r in requirements}


def declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project.get("optional-dependencies", {})
    return requirement_names(project["dependencies"]), {
        k: requirement_names(v) for k, v in extras.items()
    }


def third_party_imports(paths: list[Path]) -> dict[str, dict[str, bool]]:
    """``{dotted module: {file: imported at module level}}`` of every non-stdlib, non-sstl import
    (a function-level import runs only when that function does)."""
    found: dict[str, dict[str, bool]] = {}
    for path in paths:
        tree = ast.parse(path.read_text(), str(path))
        lazy: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lazy.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in ("sstl", "__future__"):
                    continue
                rel = str(path.relative_to(REPO))
                eager = id(node) not in lazy
                found.setdefault(name, {})[rel] = found.get(name, {}).get(rel, False) or eager
    return found


@functools.cache
def installed() -> dict[str, list[str]]:
    return md.packages_distributions()  # top-level module -> distributions (slow: read once)


def distributions(module: str) -> set[str]:
    """The distributions a module needs: the one that provides it, and any it needs to work."""
    top = module.split(".")[0]
    provided = installed().get(top) or [NOT_INSTALLED.get(top, top)]
    needs = {NEEDS[m] for m in NEEDS if module == m or module.startswith(m + ".")}
    return {normalise(d) for d in provided} | needs


def sources(*roots: str) -> list[Path]:
    return [p for root in roots for p in sorted((REPO / root).rglob("*.py"))]


def test_everything_the_package_imports_is_declared():
    core, extras = declared()
    optional = set().union(*extras.values())
    problems = []
    for module, files in third_party_imports([*sources("sstl"), REPO / "hubconf.py"]).items():
        for dist in distributions(module):
            eager = sorted(f for f, at_top in files.items() if at_top)
            if dist in core:
                continue
            if eager:  # `import sstl.x` itself would fail without it
                problems.append(f"{dist} ({module}) is imported at module level by {eager}")
            elif dist not in optional:
                problems.append(f"{dist} ({module}, in {sorted(files)}) is declared nowhere")
    assert not problems, "pyproject.toml misses dependencies:\n" + "\n".join(problems)


def test_everything_the_tests_and_benchmarks_import_is_in_the_dev_extra():
    core, extras = declared()
    have = core | extras["dev"]
    missing = {
        f"{dist} ({module}, in {sorted(files)[:3]})"
        for module, files in third_party_imports(sources("tests", "bench")).items()
        for dist in distributions(module)
        if dist not in have
    }
    assert not missing, "add to the dev extra:\n" + "\n".join(sorted(missing))


def test_faiss_is_an_optional_extra_that_dev_installs():
    core, extras = declared()
    assert "faiss-cpu" not in core
    assert "faiss-cpu" in extras["faiss"] and "faiss-cpu" in extras["dev"]


def test_the_version_has_one_owner():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "sstl.__version__"}


def test_default_retrieval_runs_without_faiss():
    """The int8 and torch backends with faiss unimportable: they work and never ask for it."""
    code = (
        "import sys; sys.modules['faiss'] = None  # import faiss now raises ImportError\n"
        "import numpy as np\n"
        "from sstl.eval.retrieval import topk_accuracy\n"
        "rng = np.random.default_rng(0)\n"
        "q, g = rng.normal(size=(20, 8)), rng.normal(size=(50, 8))\n"
        "ql, gl = rng.integers(0, 3, 20), rng.integers(0, 3, 50)\n"
        "for backend in ('int8', 'torch'):\n"
        "    print(backend, topk_accuracy(q, ql, g, gl, ks=(1, 5), backend=backend))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("{1: ") == 2, proc.stdout


def test_faiss_backend_without_faiss_names_the_extra(monkeypatch):
    from sstl.eval.retrieval import topk_accuracy
    from sstl.runtime import UserError

    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss raises ImportError
    rng = np.random.default_rng(0)
    q, g = rng.normal(size=(4, 8)), rng.normal(size=(10, 8))
    with pytest.raises(UserError, match=r"pip install 'sstl\[faiss\]'.*'int8'"):
        topk_accuracy(q, rng.integers(0, 2, 4), g, rng.integers(0, 2, 10), backend="faiss")
