"""Tables 1-5: our numbers beside the paper's, with differences and provenance.

Every table keeps the paper's rows and layout. Each metric becomes three columns: ``<M> ours``,
``<M> paper`` and ``<M> Δ`` (ours - paper). A row this project can run but did not holds the
reason in its ``ours`` cell ("not run: ...") and no number; a baseline the project does not
reimplement holds "published". ``DataFrame.attrs`` carries ``title``, ``footnotes`` and
``provenance`` (lines naming the git commit, config, manifests, metrics files and checkpoints).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from sstl.report.paper import TABLES, load_paper

LABELS = {"ucf101": "UCF101", "hmdb51": "HMDB51", "top1": "Top1", "top5": "Top5"}
LABELS |= {"top10": "Top10", "top20": "Top20", "top50": "Top50"}
DESCRIPTIVE = {
    "table1": {
        "method": "Method",
        "backbone": "Backbone",
        "input_size": "Input size",
        "training_data": "Training data",
    },
    "table2": {"method": "Method", "network": "Network"},
    "table3": {"method": "Method", "network": "Network"},
    "table4": {
        "color_jitter": "Color jittering",
        "input_frames": "Input frames",
        "dropped_frames": "Dropped frames",
        "speed_distortion": "Speed distortion",
        "speed_pred": "Speed pred.",
    },
    "table5": {
        "network": "Network",
        "memory_size": "Memory size",
        "temporal_module": "Temporal module",
        "clip_to_video": "Clip-to-video loss",
    },
}
KIND = {"table1": "finetune", "table2": "retrieval", "table3": "retrieval"}
KIND |= {"table4": "finetune", "table5": "finetune"}
SPEC_OPTIONAL = ("experiments", "run", "config_hash", "figure1", "figure4", "figure5")


class SpecError(ValueError):
    """The report spec is malformed; the message names the key and what is allowed."""


def validate_spec(spec: Any, paper: dict[str, Any] | None = None) -> dict[str, Any]:
    """Check the report spec (format: ``sstl.report.build`` docstring) and fill defaults."""
    paper = paper or load_paper()
    if not isinstance(spec, dict):
        raise SpecError(f"report spec must be a mapping, got {type(spec).__name__}")
    allowed_keys = {"datasets", *TABLES, *SPEC_OPTIONAL}
    unknown = sorted(set(spec) - allowed_keys)
    if unknown:
        raise SpecError(
            f"report spec: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed_keys))}"
        )
    datasets = spec.get("datasets")
    if not isinstance(datasets, dict) or set(datasets) - {"ucf101", "hmdb51"}:
        raise SpecError(
            f"report spec datasets = {datasets!r}: a mapping with keys ucf101 and hmdb51, each a "
            "dataset name of ours or null"
        )
    out = dict(spec)
    out["datasets"] = {k: datasets.get(k) for k in ("ucf101", "hmdb51")}
    for paper_ds, ours in out["datasets"].items():
        if ours is not None and not isinstance(ours, str):
            raise SpecError(f"report spec datasets.{paper_ds} = {ours!r}: a name or null")
    for table in TABLES:
        rows = spec.get(table) or {}
        if not isinstance(rows, dict):
            raise SpecError(f"report spec {table} = {rows!r}: a mapping paper row -> experiment")
        allowed = paper[table]["reproducible"]
        for row, exp in rows.items():
            if row not in allowed:
                raise SpecError(
                    f"report spec {table}.{row}: not a reproducible row; allowed: {allowed}"
                )
            if exp is not None and not isinstance(exp, str):
                raise SpecError(f"report spec {table}.{row} = {exp!r}: an experiment or null")
        out[table] = dict(rows)
    exps = spec.get("experiments")
    if isinstance(exps, dict):  # the workflow hands {name: description}
        exps = list(exps)
    for key, names in (("experiments", exps), ("run", spec.get("run"))):
        if names is not None and not (
            isinstance(names, list) and all(isinstance(e, str) for e in names)
        ):
            raise SpecError(f"report spec {key} = {names!r}: a list of experiment names")
    out["experiments"] = exps
    out["run"] = spec.get("run")
    if not isinstance(spec.get("config_hash", ""), str):
        raise SpecError(f"report spec config_hash = {spec['config_hash']!r}: a string")
    return out


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
    spec: dict[str, Any], runs_dir: Path, kind: str, exp: str | None, ds: str | None, metric: str
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
    if not path.is_file():
        return None, f"not run: metrics file {shown(path, runs_dir)} missing", None
    value = json.loads(path.read_text()).get(metric)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None, f"not run: {metric} absent from {shown(path, runs_dir)}", None
    return float(value), None, path


def lookup(
    spec: dict[str, Any], runs_dir: Path, kind: str, exp: str | None, paper_ds: str, metric: str
) -> tuple[float | None, str | None, Path | None]:
    """:func:`read_metric` for the dataset of ours that stands in for paper dataset ``paper_ds``."""
    ds = spec["datasets"].get(paper_ds)
    if exp is not None and ds is None:
        return None, f"not run: no dataset of ours stands in for {LABELS[paper_ds]}", None
    return read_metric(spec, runs_dir, kind, exp, ds, metric)


def _source(table: str, column: str, paper: dict[str, Any]) -> tuple[str, str]:
    """(paper dataset, metric key in our metrics.json) behind one paper column."""
    if table == "table1":
        return column, "top1"
    if table in ("table2", "table3"):
        return paper[table]["dataset"], column
    return "ucf101", "top1"


def _descriptive(value: Any) -> str:
    if isinstance(value, bool):
        return "✓" if value else "×"
    return "-" if value is None else str(value)


def config_line(provenance: dict[str, Any]) -> str:
    """How the config is identified: file sha256 (--config) and/or the workflow's config hash."""
    cfg = provenance.get("config") or {}
    parts = []
    if cfg.get("path"):
        parts.append(f"config {cfg['path']} sha256 {cfg['sha256']}")
    if cfg.get("hash"):
        parts.append(f"config hash {cfg['hash']} (sstl.pipeline.config_hash)")
    return "; ".join(parts) or "config not given"


def _provenance(
    provenance: dict[str, Any], used: set[Path], datasets: set[str], runs_dir: Path
) -> list[str]:
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


def build_table(
    name: str, spec: dict[str, Any], runs_dir: Path, provenance: dict[str, Any], paper: dict
) -> pd.DataFrame:
    """One table (see the module docstring for its layout)."""
    table = paper[name]
    rows_spec = spec[name]
    records, used, datasets = [], set(), set()
    for prow in table["rows"]:
        rec = {label: _descriptive(prow[k]) for k, label in DESCRIPTIVE[name].items()}
        reproducible = prow["key"] in table["reproducible"]
        exp = rows_spec.get(prow["key"])
        rec["Experiment"] = exp or ""
        for col in table["columns"]:
            label, published = LABELS[col], prow[col]
            if reproducible:
                paper_ds, metric = _source(name, col, paper)
                ours, reason, path = lookup(spec, runs_dir, KIND[name], exp, paper_ds, metric)
                if path is not None:
                    used.add(path)
                    datasets.add(spec["datasets"][paper_ds])
            else:
                ours, reason = None, "published"
            diff = None if ours is None or published is None else round(ours - published, 4)
            rec[f"{label} ours"] = round(ours, 4) if ours is not None else reason
            rec[f"{label} paper"] = published
            rec[f"{label} Δ"] = diff
        records.append(rec)
    df = pd.DataFrame.from_records(records).astype(object)
    df = df.where(df.notna(), None)
    footnotes = list(table["footnotes"])
    for paper_ds in dict.fromkeys(_source(name, c, paper)[0] for c in table["columns"]):
        ours_ds = spec["datasets"][paper_ds]
        if ours_ds is not None and ours_ds != paper_ds:
            footnotes.append(
                f"Our {LABELS[paper_ds]} column is dataset '{ours_ds}' (a stand-in, not "
                f"{LABELS[paper_ds]}): the differences compare different data."
            )
    df.attrs = {
        "name": name,
        "title": table["title"],
        "footnotes": footnotes,
        "provenance": _provenance(provenance, used, datasets, runs_dir),
    }
    return df


def build_tables(spec: dict, runs_dir: Path, provenance: dict) -> dict[str, pd.DataFrame]:
    """Tables 1-5 as DataFrames keyed ``table1``..``table5``.

    ``spec``: the report spec (``sstl.report.build`` docstring). ``runs_dir``: the ``runs/``
    folder holding ``finetune/<exp>/<ds>/metrics.json`` and ``retrieval/<exp>/<ds>/metrics.json``.
    ``provenance``: ``{"git": {"sha", "dirty"}, "config": {"path", "sha256", "hash"} (any may be
    missing), "manifests": {<our dataset>: {"path", "sha256"}}}``.
    """
    paper = load_paper()
    spec = validate_spec(spec, paper)
    return {n: build_table(n, spec, Path(runs_dir), provenance, paper) for n in TABLES}


def _fmt(column: str, value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"{value:+.1f}" if column.endswith(" Δ") else f"{value:.1f}"
    return str(value)


def formatted(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Display strings (1 decimal like the paper, signed differences) and the reasons list.

    A "not run: why" cell becomes "not run [n]" and ``why`` is the n-th reason, so a row that
    misses one metrics file does not repeat the same sentence in every metric column.
    """
    reasons: list[str] = []

    def cell(column: str, value: Any) -> str:
        if isinstance(value, str) and value.startswith("not run:"):
            if value not in reasons:
                reasons.append(value)
            return f"not run [{reasons.index(value) + 1}]"
        return _fmt(column, value)

    cells = pd.DataFrame({c: [cell(c, v) for v in df[c]] for c in df.columns})
    return cells, [f"[{i}] {r}" for i, r in enumerate(reasons, 1)]


def notes(df: pd.DataFrame, reasons: list[str]) -> list[str]:
    """Lines printed under a table: not-run reasons, footnotes, provenance."""
    return [
        *reasons,
        *df.attrs.get("footnotes", []),
        *(f"provenance: {p}" for p in df.attrs.get("provenance", [])),
    ]


def to_markdown(df: pd.DataFrame) -> str:
    """The table in Markdown, then its reasons, footnotes and provenance as a list."""
    cells, reasons = formatted(df)
    body = cells.to_markdown(index=False, disable_numparse=True)
    lines = "\n".join(f"- {n}" for n in notes(df, reasons))
    return f"**{df.attrs.get('title', '')}**\n\n{body}\n\n{lines}\n"


def _tex(text: str) -> str:
    out = "".join("\\" + ch if ch in "&%$#_{}" else ch for ch in str(text))
    for raw, tex in (("Δ", r"$\Delta$"), ("×", r"$\times$"), ("✓", r"\checkmark"), ("†", r"\dag")):
        out = out.replace(raw, tex)
    return out.replace("~", r"\textasciitilde{}").replace("^", r"\textasciicircum{}")


def to_latex(df: pd.DataFrame) -> str:
    """A booktabs ``table`` environment; footnotes and provenance follow the tabular."""
    cells, reasons = formatted(df)
    lines = [
        r"\begin{table}[t]",
        r"\centering\small",
        r"\caption{" + _tex(df.attrs.get("title", "")) + "}",
        r"\begin{tabular}{" + "l" * len(cells.columns) + "}",
        r"\toprule",
        " & ".join(_tex(c) for c in cells.columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(_tex(v) for v in row) + r" \\" for row in cells.itertuples(index=False)]
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\footnotesize"]
    lines += [_tex(n) + r"\\" for n in notes(df, reasons)]
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_csv(df: pd.DataFrame) -> str:
    """CSV (full precision), then ``#`` lines: read back with ``pd.read_csv(f, comment="#")``."""
    comments = [f"# footnote: {n}" for n in df.attrs.get("footnotes", [])]
    comments += [f"# provenance: {p}" for p in df.attrs.get("provenance", [])]
    return df.to_csv(index=False, lineterminator="\n") + "\n".join(comments) + "\n"


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/table{1..5}.{csv,md,tex}``; return the paths written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in tables.items():
        for ext, render in (("csv", to_csv), ("md", to_markdown), ("tex", to_latex)):
            path = out_dir / f"{name}.{ext}"
            path.write_text(render(df))
            written.append(path)
    return written
