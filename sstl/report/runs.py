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

from sstl.report.stats import mean_interval


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


def replicas(spec: dict[str, Any], exp: str) -> list[str]:
    """The runs of experiment ``exp``: its replicas (one per seed), or the experiment itself."""
    return list((spec.get("replicas") or {}).get(exp) or [exp])


def read_metric(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, ds: str | None, metric: str
) -> tuple[float | None, str | None, Path | None]:
    """(value, None, metrics file) when we have the number, else (None, "not run: why", None).

    ``kind`` is ``finetune`` or ``retrieval``; ``ds`` is one of our dataset names. An experiment
    with replicas gives their mean and the first replica's file (:func:`read_replicas`).
    """
    values, why, paths = read_replicas(spec, runs_dir, kind, exp, ds, metric)
    if why is not None:
        return None, why, None
    return sum(values) / len(values), None, paths[0]


def read_interval(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, ds: str | None, metric: str
) -> tuple[float | None, float | None, str | None]:
    """(mean over the replicas, 95% t-interval half-width or None for one run, None), or
    (None, None, "not run: why") as :func:`read_replicas` says."""
    values, why, _ = read_replicas(spec, runs_dir, kind, exp, ds, metric)
    if why is not None:
        return None, None, why
    mean, ci = mean_interval(values)
    return mean, ci, None


def read_replicas(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, ds: str | None, metric: str
) -> tuple[list[float], str | None, list[Path]]:
    """(one value per replica, None, their files), or ([], "not run: why", []) when any of them
    is missing: a mean over the seeds that happened to finish would hide the others."""
    if exp is None:
        return [], "not run: no experiment assigned in the report spec", []
    if spec.get("experiments") is not None and exp not in spec["experiments"]:
        return [], f"not run: experiment '{exp}' not in config", []
    if spec.get("run") is not None and exp not in spec["run"]:
        return [], f"not run: experiment '{exp}' not in the config's run list", []
    if ds is None:
        return [], "not run: no dataset of ours assigned", []
    values, paths = [], []
    for run in replicas(spec, exp):
        path = metrics_path(runs_dir, kind, run, ds)
        if not runs_dir.has(path):
            return [], f"not run: metrics file {shown(path, runs_dir)} missing", []
        value = json.loads(path.read_text()).get(metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return [], f"not run: {metric} absent from {shown(path, runs_dir)}", []
        values.append(float(value))
        paths.append(path)
    return values, None, paths


def learning_is_real(spec: dict, runs: Runs) -> dict[str, Any]:
    """SSTL vs random init vs SSTL w/o temporal aug on retrieval and fine-tune top-1.

    Each margin's 95% interval: over seeds when both sides ran the same number (>= 2) of
    replicas (a t-interval of the per-seed differences, which holds the seed-to-seed variation
    of training), else binomial over the test videos (the test set's sampling error only).
    """
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
            values, why, paths = read_replicas(spec, runs, kind, exp, ds, "top1")
            n = None
            if paths:
                m = json.loads(paths[0].read_text())
                clips = (m.get("protocol") or {}).get("clips") if kind == "retrieval" else None
                n = m.get("num_videos") or (m.get("num_queries") or 0) // max(clips or 1, 1)
            mean, ci = mean_interval(values) if values else (None, None)
            rows[label][kind] = {"top1": mean, "why": why, "n": n, "seeds": values, "ci95": ci}
    margins = {}
    for other in ("Random init", "SSTL (w/o temp aug)"):
        for kind in ("retrieval", "finetune"):
            a, b = rows["SSTL"][kind], rows[other][kind]
            if a["top1"] is None or b["top1"] is None:
                continue
            if len(a["seeds"]) == len(b["seeds"]) >= 2:
                diffs = [x - y for x, y in zip(a["seeds"], b["seeds"], strict=True)]
                margin, ci = mean_interval(diffs)
                how = f"t-interval over {len(diffs)} seeds"
            else:
                se = [
                    math.sqrt(max(x["top1"] * (100 - x["top1"]), 0) / max(x["n"] or 1, 1))
                    for x in (a, b)
                ]
                margin, ci = a["top1"] - b["top1"], 1.96 * math.hypot(*se)
                how = "binomial interval over test videos"
            margins[f"SSTL - {other} ({kind} top-1)"] = {"margin": margin, "ci95": ci, "how": how}
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
