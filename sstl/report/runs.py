"""Our runs' outputs as the report reads them: metrics files, comparisons, the summary.

``runs/`` holds ``finetune/<exp>/<ds>/metrics.json`` (``sstl evaluate``),
``retrieval/<exp>/<ds>/metrics.json`` (``sstl retrieve``) and
``analysis/<exp>/<ds>/similarity.json`` (``sstl analyse``). The report reads only the files it is
given (:class:`Runs`: the workflow rule's declared inputs), never whatever else lies in ``runs/``,
so the results of an experiment removed from the config cannot leak in. A number the report
cannot read comes back as a "not run: why" reason, never as a guess.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class Runs(os.PathLike):
    """The result files the report may read: ``files`` under one ``runs/`` folder, each at
    ``<root>/<kind>/<exp>/<dataset>/<name>``. As a path it is that root (for building the
    expected path of a cell's file and for messages); :meth:`has` says whether a file is one of
    the inputs and exists."""

    def __init__(self, files: Iterable[str | os.PathLike], root: str | os.PathLike) -> None:
        self.root = Path(root).resolve()
        self.files = {Path(f).resolve() for f in files}
        outside = sorted(str(f) for f in self.files if self.root not in f.parents[3:4])
        if outside:
            raise ValueError(
                f"report inputs must be {self.root}/<kind>/<exp>/<dataset>/<file>: {outside[:3]}"
            )

    def __fspath__(self) -> str:
        return str(self.root)

    def __truediv__(self, part: str | os.PathLike) -> Path:
        return self.root / part

    @property
    def parent(self) -> Path:
        return self.root.parent

    def has(self, path: str | os.PathLike) -> bool:
        return Path(path).resolve() in self.files and Path(path).is_file()

    def of(self, kind: str, name: str) -> Iterator[Path]:
        """The inputs ``<root>/<kind>/*/*/<name>``, sorted."""
        for path in sorted(self.files):
            if path.name == name and path.parents[2].name == kind and path.parents[3] == self.root:
                yield path


def metrics_path(runs_dir: Path, kind: str, exp: str, ds: str) -> Path:
    """Where ``sstl evaluate`` (kind finetune) or ``sstl retrieve`` (retrieval) wrote metrics."""
    return Path(runs_dir) / kind / exp / ds / "metrics.json"


def shown(path: Path, runs_dir: Path) -> str:
    """A metrics path as the report prints it: relative to the folder holding ``runs_dir``."""
    try:
        return str(Path(path).relative_to(Path(runs_dir).parent))
    except ValueError:
        return str(path)


def read_metric(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, ds: str | None, metric: str
) -> tuple[float | None, str | None, Path | None]:
    """(value, None, metrics file) when we have the number, else (None, "not run: why", None).

    ``kind`` is ``finetune`` or ``retrieval``; ``ds`` is one of our dataset names.
    """
    if exp is None:
        return None, "not run: no experiment assigned in the report spec", None
    if spec.get("experiments") is not None and exp not in spec["experiments"]:
        return None, f"not run: experiment '{exp}' not in config", None
    if spec.get("run") is not None and exp not in spec["run"]:
        return None, f"not run: experiment '{exp}' not in the config's run list", None
    if ds is None:
        return None, "not run: no dataset of ours assigned", None
    path = metrics_path(runs_dir, kind, exp, ds)
    if not runs_dir.has(path):
        return None, f"not run: metrics file {shown(path, runs_dir)} missing", None
    value = json.loads(path.read_text()).get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, f"not run: {metric} absent from {shown(path, runs_dir)}", None
    return float(value), None, path


def learning_is_real(spec: dict, runs: Runs) -> dict[str, Any]:
    """SSTL vs random init vs SSTL w/o temporal aug on retrieval and fine-tune top-1."""
    t1, t2 = spec["table1"], spec["table2"]
    ds = spec["figure5"]["dataset"] or spec["datasets"]["ucf101"]
    models = {
        "SSTL": t2.get("sstl") or t1.get("sstl"),
        "Random init": t2.get("scratch") or t1.get("scratch"),
        "SSTL (w/o temp aug)": t2.get("sstl_wo_temp"),
    }
    rows: dict[str, dict[str, Any]] = {}
    for label, exp in models.items():
        rows[label] = {"experiment": exp}
        for kind in ("retrieval", "finetune"):
            value, why, path = read_metric(spec, runs, kind, exp, ds, "top1")
            n = None
            if path is not None:
                m = json.loads(path.read_text())
                clips = (m.get("protocol") or {}).get("clips") if kind == "retrieval" else None
                n = m.get("num_videos") or (m.get("num_queries") or 0) // max(clips or 1, 1)
            rows[label][kind] = {"top1": value, "why": why, "n": n}
    margins = {}
    for other in ("Random init", "SSTL (w/o temp aug)"):
        for kind in ("retrieval", "finetune"):
            a, b = rows["SSTL"][kind], rows[other][kind]
            if a["top1"] is None or b["top1"] is None:
                continue
            se = [
                math.sqrt(max(x["top1"] * (100 - x["top1"]), 0) / max(x["n"] or 1, 1))
                for x in (a, b)
            ]
            margins[f"SSTL - {other} ({kind} top-1)"] = {
                "margin": a["top1"] - b["top1"],
                "ci95": 1.96 * math.hypot(*se),
            }
    return {"dataset": ds, "models": rows, "margins": margins}


def summary(runs: Runs, tables: dict, real: dict, provenance: dict) -> dict[str, Any]:
    """All our numbers (for ``dvc metrics``), the tables' cells and the provenance."""
    out: dict[str, Any] = {"finetune": {}, "retrieval": {}, "analysis": {}}
    for kind in ("finetune", "retrieval"):
        for path in runs.of(kind, "metrics.json"):
            m = json.loads(path.read_text())
            nums = {k: v for k, v in m.items() if isinstance(v, (int, float))}
            out[kind].setdefault(path.parent.parent.name, {})[path.parent.name] = nums
    for path in runs.of("analysis", "similarity.json"):
        s = json.loads(path.read_text())
        out["analysis"].setdefault(path.parent.parent.name, {})[path.parent.name] = {
            "figure1_mean": dict(
                zip(map(str, s["figure1"]["strengths"]), s["figure1"]["mean"], strict=True)
            ),
            "intra_mean": s["figure2"]["intra"]["mean"],
            "inter_mean": s["figure2"]["inter"]["mean"],
        }
    clean = {n: df.astype(object).where(df.notna(), None) for n, df in tables.items()}
    out["tables"] = {n: df.to_dict(orient="records") for n, df in clean.items()}
    out["learning_is_real"] = real
    out["provenance"] = provenance
    return out
