"""The paper's claims from its ablation tables, checked against our runs of the same rows.

Each claim is one or more comparisons of two rows' fine-tune top-1 with the sign the paper
reports. A comparison is judged on the per-seed differences of the two experiments' replicas (a
95% t-interval): above zero or below zero when the interval says so, else undecided. A claim is
supported when every comparison goes the paper's way, contradicted when one clearly goes the
other way, and otherwise the data cannot tell.
"""

from __future__ import annotations

from typing import Any

from sstl.report.runs import Runs, read_replicas
from sstl.report.stats import mean_interval

# (claim, [(table, row, other row, sign the paper reports for row - other)])
CLAIMS = [
    ("Temporal augmentation helps (Table 4 row 7 vs row 2)", [("table4", "row7", "row2", 1)]),
    (
        "Dropped frames help up to a point (Table 4: row 4 above row 3, row 5 below row 4)",
        [("table4", "row4", "row3", 1), ("table4", "row5", "row4", -1)],
    ),
    (
        "The memory bank helps (Table 5: row 2 above row 1, the temporal bank row 4 above row 2)",
        [("table5", "row2", "row1", 1), ("table5", "row4", "row2", 1)],
    ),
    ("The clip-to-video loss helps (Table 5 row 5 vs row 4)", [("table5", "row5", "row4", 1)]),
]


def compare(spec: dict[str, Any], runs: Runs, table: str, row: str, other: str) -> dict[str, Any]:
    """Mean and 95% t-interval of the per-seed differences ``row - other`` (fine-tune top-1), or
    the reason there is none."""
    ds = spec["datasets"].get("ucf101")
    got = []
    for key in (row, other):
        values, why, _ = read_replicas(spec, runs, "finetune", spec[table].get(key), ds, "top1")
        if why is not None:
            return {"why": f"{key}: {why}"}
        got.append(values)
    if len(got[0]) != len(got[1]) or len(got[0]) < 2:
        return {"why": f"needs the same number (>= 2) of seeds, got {len(got[0])}, {len(got[1])}"}
    diff, ci = mean_interval([a - b for a, b in zip(*got, strict=True)])
    return {"diff": diff, "ci95": ci, "seeds": len(got[0])}


def verdict(signs: list[int | None]) -> str:
    """``signs``: per comparison +1 (goes the paper's way), -1 (clearly the other way), 0
    (undecided) or None (not run)."""
    if any(s == -1 for s in signs):
        return "contradicts"
    if signs and all(s == 1 for s in signs):
        return "supports"
    return "cannot tell"


def check_claims(spec: dict[str, Any], runs: Runs) -> list[dict[str, Any]]:
    """Per claim: its comparisons and whether our runs support it, contradict it or cannot tell."""
    out = []
    for claim, comparisons in CLAIMS:
        rows, signs = [], []
        for table, row, other, sign in comparisons:
            c = compare(spec, runs, table, row, other)
            s = None
            if "diff" in c:
                ends = (sign * (c["diff"] - c["ci95"]), sign * (c["diff"] + c["ci95"]))
                s = 1 if min(ends) > 0 else -1 if max(ends) < 0 else 0  # the paper's way or not
            signs.append(s)
            rows.append({"table": table, "row": row, "other": other, "sign": sign, **c})
        out.append({"claim": claim, "comparisons": rows, "verdict": verdict(signs)})
    return out


def claims_md(claims: list[dict[str, Any]]) -> str:
    lines = []
    for c in claims:
        parts = []
        for r in c["comparisons"]:
            what = f"{r['table'][-1]}.{r['row']} − {r['table'][-1]}.{r['other']}"
            if "diff" in r:
                parts.append(f"{what} = {r['diff']:+.1f} ± {r['ci95']:.1f} ({r['seeds']} seeds)")
            else:
                parts.append(f"{what}: {r['why']}")
        lines.append(f"- **{c['claim']}**: our runs **{c['verdict']}** ({'; '.join(parts)}).")
    return "\n".join(lines) + "\n"
