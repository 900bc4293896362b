"""The paper's published numbers (``paper.yaml`` beside this file), loaded and checked.

One owner per fact: every published value the report prints comes from ``paper.yaml``; nothing
else in the package types a number from the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

PAPER_YAML = Path(__file__).with_name("paper.yaml")
TABLES = ("table1", "table2", "table3", "table4", "table5")


class PaperDataError(ValueError):
    """paper.yaml is malformed; the message names the table, row and field."""


def _check_table(name: str, table: dict[str, Any]) -> None:
    for field in ("title", "columns", "reproducible", "rows", "footnotes"):
        if field not in table:
            raise PaperDataError(f"paper.yaml {name}: missing field {field!r}")
    keys = [row.get("key") for row in table["rows"]]
    if len(set(keys)) != len(keys) or None in keys:
        raise PaperDataError(f"paper.yaml {name}: row keys must be present and unique, got {keys}")
    for row in table["rows"]:
        for col in table["columns"]:
            if col not in row:
                raise PaperDataError(f"paper.yaml {name} row {row['key']}: missing {col!r}")
            value = row[col]
            if value is not None and not isinstance(value, (int, float)):
                raise PaperDataError(
                    f"paper.yaml {name} row {row['key']} {col} = {value!r}: a number or null"
                )
    unknown = sorted(set(table["reproducible"]) - set(keys))
    if unknown:
        raise PaperDataError(f"paper.yaml {name}: reproducible rows {unknown} are not rows")


def load_paper(path: str | Path = PAPER_YAML) -> dict[str, Any]:
    """The published numbers: ``{"table1".."table5", "figure4", "contradictions", "source"}``.

    Each table is ``{"title", "columns", "reproducible", "rows": [{"key", <descriptive fields>,
    <column>: float | None}], "footnotes"}``; ``None`` is a '-' cell. ``reproducible`` lists the
    rows this project can run (the others are baselines shown as published).
    """
    data = yaml.safe_load(Path(path).read_text())
    for name in TABLES:
        if name not in data:
            raise PaperDataError(f"paper.yaml: missing {name}")
        _check_table(name, data[name])
    for item in data.get("contradictions", []):
        missing = {"id", "table", "where", "says", "conflicts_with"} - set(item)
        if missing:
            raise PaperDataError(f"paper.yaml contradiction {item.get('id')}: missing {missing}")
    return data


def paper_row(paper: dict[str, Any], table: str, key: str) -> dict[str, Any]:
    """The row ``key`` of ``table``; a clear error listing the valid keys otherwise."""
    for row in paper[table]["rows"]:
        if row["key"] == key:
            return row
    keys = ", ".join(r["key"] for r in paper[table]["rows"])
    raise KeyError(f"{table} has no row {key!r}; rows: {keys}")
