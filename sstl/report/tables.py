"""Tables 1-5: our numbers beside the paper's, with differences and provenance.

Every table keeps the paper's rows and layout. Each metric becomes three columns: ``<M> ours``,
``<M> paper`` and ``<M> Δ`` (ours - paper). A row this project can run but did not holds the
reason in its ``ours`` cell ("not run: ...") and no number; a baseline the project does not
reimplement holds "published". The descriptive columns of our rows (backbone, input size and
clip length, training data) say what our experiment ran, with the paper's value beside it, and
each dataset column's footnote says how many of its split's videos were present and used.
An experiment run with several seeds (``replicas`` in the spec) gives the mean over its seeds,
and the table gains a ``<M> ours ±95%`` column: the half-width of the Student-t interval.
``DataFrame.attrs`` carries ``title``, ``footnotes`` and ``provenance`` (lines naming the git
commit, config, manifests, metrics files and checkpoints).
:mod:`sstl.report.writers` renders them as CSV, Markdown and LaTeX.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from sstl.report.paper import TABLES, load_paper
from sstl.report.provenance import column_note, table_provenance
from sstl.report.runs import Runs, read_interval, read_metric
from sstl.report.spec import validate_spec

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


def lookup(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, paper_ds: str, metric: str
) -> tuple[float | None, str | None, Path | None]:
    """:func:`read_metric` for the dataset of ours that stands in for paper dataset ``paper_ds``."""
    ds = spec["datasets"].get(paper_ds)
    if exp is not None and ds is None:
        return None, f"not run: no dataset of ours stands in for {LABELS[paper_ds]}", None
    return read_metric(spec, runs_dir, kind, exp, ds, metric)


def interval(
    spec: dict[str, Any], runs_dir: Runs, kind: str, exp: str | None, paper_ds: str, metric: str
) -> float | None:
    """The 95% t-interval's half-width over an experiment's replicas (None for a single run)."""
    return read_interval(spec, runs_dir, kind, exp, spec["datasets"].get(paper_ds), metric)[1]


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


# descriptive column -> the setting of our experiment it shows (sstl.pipeline.report_settings)
OURS = {"backbone": "backbone", "network": "backbone", "input_size": "finetune_input"}
OURS["training_data"] = "pretrain_data"


def _ours(key: str, setting: dict[str, Any], paper_value: Any, provenance: dict) -> str:
    """Our experiment's value of a descriptive column, the paper's in brackets."""
    value = setting.get(OURS[key])
    if key == "training_data":
        facts = (provenance.get("manifests") or {}).get(value) or {}
        used = ((facts.get("counts") or {}).get("train") or {}).get("used")
        value = (
            "none (random init)"
            if value is None
            else f"{value} train" + (f", {used:,} videos" if used is not None else "")
        )
    return f"{value} (paper: {_descriptive(paper_value)})"


def build_table(
    name: str, spec: dict[str, Any], runs_dir: Runs, provenance: dict[str, Any], paper: dict
) -> pd.DataFrame:
    """One table (see the module docstring for its layout)."""
    table = paper[name]
    rows_spec = spec[name]
    records, used, datasets = [], set(), set()
    # experiments with replicas: their cells are means, with the interval in a column beside
    with_ci = any(e in (spec.get("replicas") or {}) for e in rows_spec.values())
    for prow in table["rows"]:
        rec = {label: _descriptive(prow[k]) for k, label in DESCRIPTIVE[name].items()}
        reproducible = prow["key"] in table["reproducible"]
        exp = rows_spec.get(prow["key"])
        setting = (spec.get("settings") or {}).get(exp) if reproducible else None
        for k, label in DESCRIPTIVE[name].items():
            if setting and k in OURS:
                rec[label] = _ours(k, setting, prow[k], provenance)
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
            if with_ci:
                ci = interval(spec, runs_dir, KIND[name], exp, *_source(name, col, paper))
                rec[f"{label} ours ±95%"] = None if ci is None or not reproducible else round(ci, 4)
            rec[f"{label} paper"] = published
            rec[f"{label} Δ"] = diff
        records.append(rec)
    df = pd.DataFrame.from_records(records).astype(object)
    df = df.where(df.notna(), None)
    footnotes = list(table["footnotes"])
    if name in ("table4", "table5"):  # ablation rows borrowing a run of another table
        footnotes += _shared_runs(name, spec)
    for paper_ds in dict.fromkeys(_source(name, c, paper)[0] for c in table["columns"]):
        ours_ds = spec["datasets"][paper_ds]
        if ours_ds is not None and ours_ds != paper_ds:
            footnotes.append(
                f"Our {LABELS[paper_ds]} column is dataset '{ours_ds}' (a stand-in, not "
                f"{LABELS[paper_ds]}): the differences compare different data."
            )
        if ours_ds is not None:
            facts = (provenance.get("manifests") or {}).get(ours_ds) or {}
            footnotes.append(column_note(LABELS[paper_ds], ours_ds, facts))
    df.attrs = {
        "name": name,
        "title": table["title"],
        "footnotes": footnotes,
        "provenance": table_provenance(provenance, used, datasets, runs_dir),
    }
    return df


def _shared_runs(name: str, spec: dict[str, Any]) -> list[str]:
    """A footnote for each experiment of this table that also fills another table's cell: one
    run serves both (e.g. Table 4 row 2 and Tables 2-3's "w/o temp" in the paper config)."""
    notes = []
    for row, exp in spec[name].items():
        others = [
            f"{_title(t)} {r}"
            for t in TABLES
            if t != name
            for r, e in spec[t].items()
            if e == exp and exp is not None
        ]
        if others:
            notes.append(
                f"Row {row} is experiment '{exp}', which also fills {', '.join(others)}: one run "
                "serves these cells."
            )
    return notes


def _title(name: str) -> str:
    return f"Table {name[-1]}"


def build_tables(spec: dict, runs: Runs, provenance: dict) -> dict[str, pd.DataFrame]:
    """Tables 1-5 as DataFrames keyed ``table1``..``table5``.

    ``spec``: the report spec (``sstl.report.build`` docstring). ``runs``: the result files the
    report may read (``finetune/<exp>/<ds>/metrics.json``, ``retrieval/<exp>/<ds>/metrics.json``).
    ``provenance``: ``{"git": {"sha", "dirty"}, "config": {"path", "sha256", "hash"} (any may be
    missing), "manifests": {<our dataset>: {"path", "sha256"}}}``.
    """
    paper = load_paper()
    spec = validate_spec(spec, paper)
    return {n: build_table(n, spec, runs, provenance, paper) for n in TABLES}
