"""``sstl report``: Tables 1-5, Figures 1/2/4/5, ``report.md`` and ``summary.json``.

Usage::

    sstl report --spec JSON_or_@file --runs runs --out results \\
        [--config config/config.yaml] [--manifests data/<ds>/manifest.csv ...]

Writes ``<out>/tables/table{1..5}.{csv,md,tex}``, ``<out>/figures/figure{1,2,4,5}.png``,
``<out>/report.md`` (the tables, figures, the "learning is real" comparison, the retrieval
protocol, the paper's contradictions and the reproduction notes) and ``<out>/summary.json`` (all
our numbers, for DVC metrics).

The report spec
---------------
A mapping (inline JSON, or ``@file`` with JSON/YAML) saying which of our runs fills which paper
cell. The workflow builds it from the config's ``report:`` section (``sstl.pipeline.report_spec``)::

    datasets: {ucf101: synthetic, hmdb51: null}  # REQUIRED. our dataset standing in for each
                                                 # paper column (null: that column is not run)
    table1: {scratch: scratch, sstl: sstl}       # paper row key -> our experiment (or null)
    table2: {scratch: scratch, sstl_wo_temp: sstl_no_temp, sstl: sstl}
    table3: {scratch: scratch, sstl_wo_temp: sstl_no_temp, sstl: sstl}
    table4: {row1: exp_or_null, ..., row7: ...}  # Table 4's rows top to bottom
    table5: {row1: ..., ..., row5: ...}          # Table 5's rows top to bottom
    figure1: {sstl: sstl, sstl_wo_temp: sstl_no_temp, random: scratch, dataset: synthetic}
        # label -> experiment for Figures 1 and 2 (label sstl / sstl_wo_temp / random print as
        # "SSTL", "SSTL (w/o temp)", "Random init"); dataset defaults to datasets.ucf101
    figure4: {experiments: {bs64_d128: {batch: 64, dim: 128, exp: name_or_null}, ...},
              dataset: synthetic}                # dataset defaults to datasets.ucf101
    figure5: {with_temp: sstl, without_temp: sstl_no_temp, dataset: synthetic}
    experiments: {name: description} or [names]  # optional: experiments the config defines
    run: [names]                                 # optional: experiments the config runs
    config_hash: "..."                           # optional: sstl.pipeline.config_hash

Row keys are those of ``sstl/report/paper.yaml`` (only its ``reproducible`` rows may be mapped);
every table, figure, ``experiments``, ``run`` and ``config_hash`` key is optional. A row mapped to
null or missing, an experiment outside ``experiments``/``run``, or a missing metrics file
makes the cell say "not run: why", never a number.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from sstl.report import figures
from sstl.report.paper import load_paper
from sstl.report.tables import (
    SpecError,
    build_tables,
    config_line,
    read_metric,
    shown,
    to_markdown,
    validate_spec,
    write_tables,
)
from sstl.runtime import git_info, log_startup, setup_logging, write_json

log = logging.getLogger(__name__)

NOTES = Path(__file__).with_name("notes.md")
FIG1_LABELS = {"sstl": "SSTL", "sstl_wo_temp": "SSTL (w/o temp)", "random": "Random init"}
READING = {
    "table1": "Fine-tune top-1: 'ours' is our run on the stand-in dataset, 'paper' the published "
    "value, Δ = ours − paper; baseline rows are the paper's numbers as published.",
    "table2": "Retrieval with the pretrained model (no fine-tuning): each test clip queries all "
    "train clips; top-k is a hit when one of the k nearest train clips has the query's class.",
    "table3": "As Table 2, on the dataset standing in for HMDB51.",
    "table4": "Each row is one pretraining augmentation setting; the number is fine-tune top-1.",
    "table5": "Each row is one memory-bank setting; the number is fine-tune top-1.",
}
CAPTIONS = {
    "figure1": "Mean cosine similarity of two temporally augmented views of one window vs "
    "strength e (window 16+e, e//3 frames dropped, playback-rate distortion, centre crop); "
    "error bars: one standard deviation over videos.",
    "figure2": "(a) Similarity of clip pairs from the same video (intra) and from different "
    "videos (inter); (b) same-video similarity vs relative temporal distance, 95% CI band.",
    "figure4": "Fine-tune top-1 by pretraining batch size and projection dimension; hatched bars "
    "were not run. The paper prints no numbers for its Figure 4.",
    "figure5": "Per-class fine-tune accuracy with minus without temporal augmentation.",
}


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _load_spec(text: str) -> dict[str, Any]:
    try:
        if text.startswith("@"):
            return yaml.safe_load(Path(text[1:]).read_text())
        return json.loads(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise SpecError(f"--spec {text[:60]!r}: not readable JSON/YAML ({err})") from err


def validate_figures(spec: dict[str, Any]) -> dict[str, Any]:
    """Check the figure sections of the spec and fill their defaults (see module docstring)."""
    default_ds = spec["datasets"]["ucf101"]
    fig1 = dict(spec.get("figure1") or {})
    fig4 = dict(spec.get("figure4") or {})
    fig5 = dict(spec.get("figure5") or {})
    for name, sec in (("figure1", fig1), ("figure4", fig4), ("figure5", fig5)):
        sec.setdefault("dataset", default_ds)
        if sec["dataset"] is not None and not isinstance(sec["dataset"], str):
            raise SpecError(f"report spec {name}.dataset = {sec['dataset']!r}: a dataset name")
    for label, exp in fig1.items():
        if label != "dataset" and exp is not None and not isinstance(exp, str):
            raise SpecError(f"report spec figure1.{label} = {exp!r}: an experiment or null")
    unknown = sorted(set(fig4) - {"experiments", "dataset"})
    if unknown:
        raise SpecError(f"report spec figure4: unknown key {unknown[0]!r} (experiments, dataset)")
    for label, bar in (fig4.get("experiments") or {}).items():
        if not isinstance(bar, dict) or not all(
            isinstance(bar.get(k), int) for k in ("batch", "dim")
        ):
            raise SpecError(
                f"report spec figure4.experiments.{label} = {bar!r}: "
                "{batch: int, dim: int, exp: name or null}"
            )
    unknown = sorted(set(fig5) - {"with_temp", "without_temp", "dataset"})
    if unknown:
        raise SpecError(f"report spec figure5: unknown key {unknown[0]!r}")
    return {**spec, "figure1": fig1, "figure4": fig4, "figure5": fig5}


def provenance_of(config: Path | None, manifests: list[Path], spec: dict) -> dict[str, Any]:
    """git commit, config identity and manifest hashes for the tables' provenance lines."""
    cfg: dict[str, Any] = {"hash": spec.get("config_hash")}
    if config is not None:
        cfg |= {"path": str(config), "sha256": sha256_file(config)}
    mans = {Path(m).parent.name: {"path": str(m), "sha256": sha256_file(m)} for m in manifests}
    return {"git": git_info(), "config": cfg, "manifests": mans}


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def make_figures(spec: dict, runs: Path, out: Path) -> dict[str, list[str]]:
    """Draw the four figures; return, per figure, notes on what was not run."""
    missing: dict[str, list[str]] = {k: [] for k in ("figure1", "figure2", "figure4", "figure5")}
    fig1 = spec["figure1"]
    ds1 = fig1["dataset"] or "no dataset"
    sims = {}
    for key, exp in fig1.items():
        if key == "dataset":
            continue
        path = runs / "analysis" / str(exp) / ds1 / "similarity.json"
        sims[FIG1_LABELS.get(key, key)] = _json(path) if exp else None
        if sims[FIG1_LABELS.get(key, key)] is None:
            why = f"{shown(path, runs)} missing" if exp else "no experiment assigned"
            missing["figure1"].append(f"{key}: not run: {why}")
    missing["figure2"] = list(missing["figure1"])
    figures.figure1(sims, out / "figure1.png", ds1)
    figures.figure2(sims, out / "figure2.png", ds1)
    fig4, bars = spec["figure4"], []
    for label, bar in (fig4.get("experiments") or {}).items():
        top1, why, _ = read_metric(spec, runs, "finetune", bar.get("exp"), fig4["dataset"], "top1")
        bars.append({"batch": bar["batch"], "dim": bar["dim"], "top1": top1, "reason": why})
        if why:
            missing["figure4"].append(f"{label}: {why}")
    figures.figure4(bars, out / "figure4.png", fig4["dataset"] or "no dataset")
    fig5, tables = spec["figure5"], []
    for key in ("with_temp", "without_temp"):
        exp, ds = fig5.get(key), fig5["dataset"]
        path = runs / "finetune" / str(exp) / str(ds) / "per_class.csv"
        ok = exp is not None and ds is not None and path.is_file()
        tables.append(pd.read_csv(path) if ok else None)
        if not ok:
            why = f"{shown(path, runs)} missing" if exp and ds else "no experiment or dataset"
            missing["figure5"].append(f"{key}: not run: {why}")
    figures.figure5(
        *tables, out / "figure5.png", str(fig5["dataset"]), "; ".join(missing["figure5"])
    )
    return missing


def learning_is_real(spec: dict, runs: Path) -> dict[str, Any]:
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


def _real_md(real: dict[str, Any]) -> str:
    lines = ["| model | experiment | retrieval top-1 | fine-tune top-1 |", "|---|---|---|---|"]
    for label, row in real["models"].items():
        cells = [
            f"{row[k]['top1']:.1f}" if row[k]["top1"] is not None else row[k]["why"]
            for k in ("retrieval", "finetune")
        ]
        lines.append(f"| {label} | {row['experiment'] or '-'} | {cells[0]} | {cells[1]} |")
    lines.append("")
    for name, m in real["margins"].items():
        verdict = "above" if m["margin"] - m["ci95"] > 0 else "not clearly above"
        lines.append(
            f"- {name}: {m['margin']:+.1f} points ± {m['ci95']:.1f} (95% binomial interval over "
            f"test videos): SSTL is {verdict} it."
        )
    if not real["margins"]:
        lines.append("- No margin can be computed: the runs above are missing.")
    return f"Dataset: `{real['dataset']}`.\n\n" + "\n".join(lines) + "\n"


def _protocol_md(spec: dict, runs: Path) -> str:
    lines = []
    for path in sorted((runs / "retrieval").glob("*/*/metrics.json")):
        m = json.loads(path.read_text())
        p = m.get("protocol") or {}
        mode = (
            "each test clip queries all train clips"
            if p.get("protocol") == "clip"
            else "the clips of a video are averaged into one feature (video_mean)"
        )
        centring = "on" if p.get("center") else "off"
        lines.append(
            f"- `{shown(path, runs)}`: layer `{p.get('layer')}`, {p.get('clips')} clips per video, "
            f"protocol `{p.get('protocol')}` ({mode}), centring {centring}"
            f", backend `{p.get('backend')}`; {m.get('num_queries')} queries, "
            f"{m.get('num_gallery')} gallery items, k = {m.get('ks')}."
        )
    return "\n".join(lines or ["- No retrieval run found."]) + "\n"


def summary(runs: Path, tables: dict, real: dict, provenance: dict) -> dict[str, Any]:
    """All our numbers (for ``dvc metrics``), the tables' cells and the provenance."""
    out: dict[str, Any] = {"finetune": {}, "retrieval": {}, "analysis": {}}
    for kind in ("finetune", "retrieval"):
        for path in sorted((runs / kind).glob("*/*/metrics.json")):
            m = json.loads(path.read_text())
            nums = {k: v for k, v in m.items() if isinstance(v, (int, float))}
            out[kind].setdefault(path.parent.parent.name, {})[path.parent.name] = nums
    for path in sorted((runs / "analysis").glob("*/*/similarity.json")):
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


def _title(name: str) -> str:
    """``table1`` -> ``Table 1``."""
    return f"{name[:-1].capitalize()} {name[-1]}"


def report_md(spec, tables, real, missing, provenance, runs: Path) -> str:
    """The report page tying tables, figures, comparisons, protocol, contradictions, notes."""
    paper = load_paper()
    git = provenance["git"]
    used = sorted(
        {
            e
            for t in ("table1", "table2", "table3", "table4", "table5")
            for e in spec[t].values()
            if e
        }
    )
    stand_in = ", ".join(
        f"{k.upper()} ← " + (f"`{v}`" if v else "none (not run)")
        for k, v in spec["datasets"].items()
    )
    parts = [
        "# SSTL reproduction report\n",
        f"Generated by `sstl report` from `{runs}`. Git commit `{git.get('sha')}`"
        f"{' (uncommitted changes)' if git.get('dirty') else ''}; {config_line(provenance)}.\n",
        f"Experiments in the tables: {', '.join(f'`{e}`' for e in used) or 'none'}. "
        f"Paper dataset columns filled by our datasets: {stand_in}. Data manifests: "
        + (
            ", ".join(
                f"`{m['path']}` sha256 `{m['sha256']}`" for m in provenance["manifests"].values()
            )
            or "not given"
        )
        + ".\n",
        "## Learning is real\n",
        _real_md(real),
        "## Retrieval protocol\n",
        _protocol_md(spec, runs),
    ]
    for name, df in tables.items():
        parts += [f"## {_title(name)}\n", f"_{READING[name]}_\n"]
        parts.append(to_markdown(df))
    parts.append("## Figures\n")
    for name in ("figure1", "figure2", "figure4", "figure5"):
        parts.append(f"### {_title(name)}\n")
        parts.append(f"![{name}](figures/{name}.png)\n\n_{CAPTIONS[name]}_\n")
        parts += [f"- {m}" for m in missing[name]]
        if name == "figure4":
            parts.append(f"- The paper: {paper['figure4']['note']}")
        parts.append("")
    parts.append("## The paper's contradictions\n")
    for c in paper["contradictions"]:
        parts.append(
            f'- **{c["where"]}** ({c["table"]}): says "{c["says"]}"; but {c["conflicts_with"]}. '
            f"{c.get('resolution', '')}"
        )
    parts.append("\n" + NOTES.read_text())
    return "\n".join(parts)


def cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="sstl report", description=__doc__.split("\n")[0])
    parser.add_argument("--spec", required=True, help="report spec: JSON, or @file (JSON/YAML)")
    parser.add_argument("--runs", type=Path, required=True, help="the runs/ folder")
    parser.add_argument("--out", type=Path, required=True, help="output folder (results/)")
    parser.add_argument("--config", type=Path, help="config YAML, hashed for provenance")
    parser.add_argument("--manifests", type=Path, nargs="*", default=[], help="manifest CSVs")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        spec = validate_figures(validate_spec(_load_spec(args.spec)))
    except SpecError as err:
        parser.error(str(err))
    log_startup("report", spec)
    for path in [args.config, *args.manifests]:
        if path is not None and not path.is_file():
            parser.error(f"{path} does not exist")
    provenance = provenance_of(args.config, args.manifests, spec)
    tables = build_tables(spec, args.runs, provenance)
    write_tables(tables, args.out / "tables")
    missing = make_figures(spec, args.runs, args.out / "figures")
    real = learning_is_real(spec, args.runs)
    text = report_md(spec, tables, real, missing, provenance, args.runs)
    (args.out / "report.md").write_text(text)
    write_json(args.out / "summary.json", summary(args.runs, tables, real, provenance))
    log.info("wrote %s", args.out / "report.md")
    return 0
