"""``report.md``: the page tying tables, figures, comparisons, protocol, contradictions, notes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sstl.report.claims import check_claims, claims_md
from sstl.report.paper import load_paper
from sstl.report.provenance import column_note, config_line
from sstl.report.runs import Runs, shown
from sstl.report.writers import to_markdown

NOTES = Path(__file__).with_name("notes.md")
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


def _cell(m: dict[str, Any]) -> str:
    """A top-1 cell: the value, or the mean ± 95% t-interval and the seeds' values."""
    if m["top1"] is None:
        return m["why"]
    if m.get("ci95") is None:
        return f"{m['top1']:.1f}"
    seeds = ", ".join(f"{v:.1f}" for v in m["seeds"])
    return f"{m['top1']:.1f} ± {m['ci95']:.1f} (seeds: {seeds})"


def _real_md(real: dict[str, Any]) -> str:
    lines = ["| model | experiment | retrieval top-1 | fine-tune top-1 |", "|---|---|---|---|"]
    for label, row in real["models"].items():
        cells = [_cell(row[k]) for k in ("retrieval", "finetune")]
        lines.append(f"| {label} | {row['experiment'] or '-'} | {cells[0]} | {cells[1]} |")
    lines.append("")
    for name, m in real["margins"].items():
        verdict = "above" if m["margin"] - m["ci95"] > 0 else "not clearly above"
        lines.append(
            f"- {name}: {m['margin']:+.1f} points ± {m['ci95']:.1f} (95% {m['how']}): SSTL is "
            f"{verdict} it."
        )
    if not real["margins"]:
        lines.append("- No margin can be computed: the runs above are missing.")
    return f"Dataset: `{real['dataset']}`.\n\n" + "\n".join(lines) + "\n"


def _protocol_md(spec: dict, runs: Runs) -> str:
    lines = []
    for path in runs.of("retrieval", "metrics.json"):
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


def _data_md(spec: dict, provenance: dict) -> str:
    """How much of each dataset column's split was there, and copies across train and test."""
    manifests = provenance.get("manifests") or {}
    lines = []
    for paper_ds, ours in spec["datasets"].items():
        if ours is not None:
            lines.append("- " + column_note(paper_ds.upper(), ours, manifests.get(ours) or {}))
    for ds, facts in sorted(manifests.items()):
        n = facts.get("same_checksum") or 0
        if n:
            shown = "; ".join(f"train `{a}` = test `{b}`" for a, b in facts["same_checksum_pairs"])
            more = (
                f" (first {len(facts['same_checksum_pairs'])})"
                if n > len(facts["same_checksum_pairs"])
                else ""
            )
            lines.append(
                f"- **Warning**: in `{ds}`, {n} train/test pair(s) have the same source checksum "
                f"(one video in both halves inflates fine-tuning and retrieval accuracy){more}: "
                f"{shown}."
            )
    return "\n".join(lines or ["- No manifest given (--manifests)."]) + "\n"


def _title(name: str) -> str:
    """``table1`` -> ``Table 1``."""
    return f"{name[:-1].capitalize()} {name[-1]}"


def report_md(spec, tables, real, missing, provenance, runs: Runs) -> str:
    """The report page tying tables, figures, comparisons, protocol, contradictions, notes."""
    claims = check_claims(spec, runs)
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
        f"Generated by `sstl report` from `{Path(runs).name}/`. Git commit `{git.get('sha')}`"
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
        "## Data\n",
        _data_md(spec, provenance),
        "## Learning is real\n",
        _real_md(real),
        "## Retrieval protocol\n",
        _protocol_md(spec, runs),
    ]
    for name, df in tables.items():
        parts += [f"## {_title(name)}\n", f"_{READING[name]}_\n"]
        parts.append(to_markdown(df))
    parts += ["## The paper's ablation claims on our runs\n", claims_md(claims)]
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
