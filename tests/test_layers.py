"""The package's layers point one way: data -> augment -> models/memory/losses/method -> train
and eval (neither imports the other) -> report -> the workflow's entry points.

Read from the source (every import, function-level ones included), so a new import that points
back up fails here rather than in a review.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "sstl"

# layer -> the layers its modules may import (their own included)
BOTTOM = {"base"}
ALLOWED = {
    "base": BOTTOM,
    "data": BOTTOM | {"data"},
    "augment": BOTTOM | {"data", "augment"},
    "models": BOTTOM | {"data", "augment", "models"},
    "train": BOTTOM | {"data", "augment", "models", "train"},
    "eval": BOTTOM | {"data", "augment", "models", "eval"},
    "report": BOTTOM | {"report"},
    "top": BOTTOM | {"data", "augment", "models", "train", "eval", "report", "top"},
}


def layer_of(module: str) -> str:
    """``sstl.train.engine`` -> ``train``; the bottom layer holds what every layer shares."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("config", "files", "runtime", "collectives"):
        return "base"
    if parts[1] in ("memory", "losses", "method", "models"):
        return "models"
    if parts[1] in ("data", "augment", "train", "eval", "report"):
        return parts[1]
    return "top"  # cli, pipeline, dvcgen, cluster


def sstl_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sstl"))
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.update([node.module] if node.module.startswith("sstl") else [])
    return found


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
        out[".".join(parts)] = path
    return out


def test_every_import_points_down_or_sideways_within_its_layer():
    wrong = []
    for name, path in sorted(modules().items()):
        mine = layer_of(name)
        for imported in sorted(sstl_imports(path)):
            theirs = layer_of(imported)
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{name} ({mine}) imports {imported} ({theirs})")
    assert not wrong, "\n".join(wrong)


def test_the_layer_map_knows_every_module():
    assert {layer_of(m) for m in modules()} <= set(ALLOWED)
    assert layer_of("sstl.train.engine") == "train" and layer_of("sstl.method") == "models"
    assert layer_of("sstl.eval.similarity") == "eval" and layer_of("sstl.pipeline") == "top"
