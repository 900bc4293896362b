"""paper.yaml holds exactly the numbers printed in the paper."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from sstl.report.paper import PAPER_YAML, PaperDataError, load_paper, paper_row


def _printed_rows(text: str, caption: str, header: str) -> list[list[str]]:
    """Tab-separated rows of a table in the extracted paper text: after ``header``, up to
    ``caption`` (the text puts each table's caption below its rows)."""
    lines = text.splitlines()
    end = next(i for i, line in enumerate(lines) if line.startswith(caption))
    start = max(i for i, line in enumerate(lines[:end]) if line.startswith(header))
    return [line.split("\t") for line in lines[start + 1 : end] if "\t" in line]


def _num(cell: str) -> float | None:
    cell = cell.strip().strip("-") if cell.strip() != "-" else ""  # "-26-" is 26, "-" is empty
    return float(cell) if cell else None


@pytest.fixture(scope="module")
def paper() -> dict:
    return load_paper()


@pytest.fixture(scope="module")
def text(shared_dir: Path) -> str:
    return (shared_dir / "paper" / "sstl-paper.txt").read_text()


def test_headline_values(paper):
    assert len(paper["table1"]["rows"]) == 11
    scratch = paper_row(paper, "table1", "scratch")
    assert (scratch["ucf101"], scratch["hmdb51"]) == (51.6, 19.3)
    sstl = paper_row(paper, "table1", "sstl")
    assert (sstl["ucf101"], sstl["hmdb51"]) == (79.1, 49.7)
    assert paper_row(paper, "table2", "scratch")["top10"] == 26
    assert paper_row(paper, "table2", "memdpc")["top50"] is None
    t2 = paper_row(paper, "table2", "sstl")
    tops = ("top1", "top5", "top10", "top20", "top50")
    assert [t2[k] for k in tops] == [44.5, 57.4, 63.5, 70.0, 79.0]
    t3 = paper_row(paper, "table3", "sstl")
    assert [t3[k] for k in tops] == [21.8, 35.7, 44.2, 54.7, 69.4]
    t4 = [r["ucf101"] for r in paper["table4"]["rows"]]
    assert t4 == [66.3, 69.5, 73.0, 74.1, 72.1, 74.5, 75.2]
    assert [r["ucf101"] for r in paper["table5"]["rows"]] == [70.8, 72.0, 69.9, 72.8, 73.9]
    assert [r["memory_size"] for r in paper["table5"]["rows"]] == [None, 2048, 4096, 2048, 2048]
    assert paper["figure4"]["numbers_printed"] is False
    with pytest.raises(KeyError, match="rows: vcop"):
        paper_row(paper, "table2", "nonexistent")


def test_table1_matches_text(paper, text):
    printed = _printed_rows(text, "Table 1:", "Method\tBackbone")
    assert len(printed) == len(paper["table1"]["rows"])
    for cells, row in zip(printed, paper["table1"]["rows"], strict=True):
        assert cells[0].split(" [")[0].lower() == row["method"].split(" [")[0].lower()
        assert (_num(cells[-2]), _num(cells[-1])) == (row["ucf101"], row["hmdb51"])


@pytest.mark.parametrize("table,caption", [("table2", "Table 2:"), ("table3", "Table 3:")])
def test_retrieval_tables_match_text(paper, text, table, caption):
    printed = _printed_rows(text, caption, "Methods\tNetwork")
    assert len(printed) == len(paper[table]["rows"])
    for cells, row in zip(printed, paper[table]["rows"], strict=True):
        assert cells[0].lower() == row["method"].lower()
        assert cells[1] == row["network"]
        ours = [row[k] for k in ("top1", "top5", "top10", "top20", "top50")]
        assert [_num(c) for c in cells[2:7]] == ours


@pytest.mark.parametrize(
    "table,caption,header",
    [
        ("table4", "Table 4:", "\tInput frames"),
        ("table5", "Table 5:", "Network\tMemory Size"),
    ],
)
def test_ablation_tables_match_text(paper, text, table, caption, header):
    printed = _printed_rows(text, caption, header)
    assert [float(c[-1]) for c in printed] == [r["ucf101"] for r in paper[table]["rows"]]
    if table == "table4":
        assert [c[1] for c in printed] == [r["input_frames"] for r in paper[table]["rows"]]
        assert [int(c[2]) for c in printed] == [r["dropped_frames"] for r in paper[table]["rows"]]


def test_contradictions(paper, text):
    by_id = {c["id"]: c for c in paper["contradictions"]}
    assert {"sec43_vs_table1", "table4_vs_table1", "sec45_boost"} <= set(by_id)
    assert by_id["sec43_vs_table1"]["text_values"] == [74.5, 44.5]
    assert by_id["sec43_vs_table1"]["table_values"] == [
        paper_row(paper, "table1", "sstl")["ucf101"],
        paper_row(paper, "table1", "sstl")["hmdb51"],
    ]
    t4 = [r["ucf101"] for r in paper["table4"]["rows"]]
    assert by_id["sec45_boost"]["table_values"] == [round(t4[5] - t4[1], 1)]
    assert by_id["table4_vs_table1"]["text_values"] == [max(t4)]
    assert "a 4.6% boost can be observed from 69.5% to 74.5%" in text.replace("\n", " ")
    for c in paper["contradictions"]:
        assert c["table"] in {"table1", "table2", "table3", "table4", "table5", "figure2"}


def test_malformed_yaml_is_rejected(tmp_path):
    data = yaml.safe_load(PAPER_YAML.read_text())
    data["table4"]["rows"][0]["ucf101"] = "66.3%"
    bad = tmp_path / "paper.yaml"
    bad.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PaperDataError, match="table4 row row1 ucf101"):
        load_paper(bad)
    del data["table2"]
    bad.write_text(yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PaperDataError, match="missing table2"):
        load_paper(bad)
