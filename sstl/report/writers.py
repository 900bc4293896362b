"""Table writers: a table's DataFrame as CSV, Markdown and LaTeX (booktabs).

Numbers print with one decimal like the paper (differences signed); "not run: why" cells become
numbered references to a reasons list; footnotes and provenance follow each table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd


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
