"""``sstl report``: Tables 1-5, Figures 1/2/4/5, ``report.md`` and ``summary.json``.

Usage::

    sstl report --spec JSON_or_@file --runs runs --inputs RESULT_FILES... --out results \\
        [--config config/config.yaml] [--manifests data/<ds>/manifest.csv ...]

Writes ``<out>/tables/table{1..5}.{csv,md,tex}``, ``<out>/figures/figure{1,2,4,5}.png``,
``<out>/report.md`` (the tables, figures, the "learning is real" comparison, the retrieval
protocol, the paper's contradictions and the reproduction notes) and ``<out>/summary.json`` (all
our numbers, for DVC metrics).

This module is the command: it reads the spec (:mod:`sstl.report.spec`), builds and writes the
tables (:mod:`sstl.report.tables`, :mod:`sstl.report.writers`), draws the figures from the runs
and writes the page (:mod:`sstl.report.page`) and summary (:mod:`sstl.report.runs`).

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
        # label -> experiment for Figures 1 and 2 (label sstl / sstl_wo_temp / random /
        # supervised print as "SSTL", "SSTL (w/o temp)", "Random init", "Supervised"); dataset
        # defaults to datasets.ucf101
    figure4: {experiments: {bs64_d128: {batch: 64, dim: 128, exp: name_or_null}, ...},
              dataset: synthetic}                # dataset defaults to datasets.ucf101
    figure5: {with_temp: sstl, without_temp: sstl_no_temp, dataset: synthetic}
    experiments: {name: description} or [names]  # optional: experiments the config defines
    run: [names]                                 # optional: experiments the config runs
    replicas: {name: [name_seed0, name_seed1, ...]}  # optional: the runs of an experiment with
        # seeds; its cells give the mean and a 95% t-interval, its figures the first seed's run
    settings: {name: {backbone: "R3D-18", finetune_input: "112×112, 16 frames",
                      pretrain_data: kinetics400}}  # optional: what each experiment ran, shown
        # in our rows' descriptive columns beside the paper's (sstl.pipeline.report_settings)
    config_hash: "..."                           # optional: sstl.files.config_hash

Row keys are those of ``sstl/report/paper.yaml`` (only its ``reproducible`` rows may be mapped);
every table, figure, ``experiments``, ``run``, ``settings`` and ``config_hash`` key is optional.
A row mapped to null or missing, an experiment outside ``experiments``/``run``, or a missing
metrics file makes the cell say "not run: why", never a number.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pandas as pd

from sstl.files import write_json
from sstl.report import figures
from sstl.report.page import report_md
from sstl.report.provenance import provenance_of
from sstl.report.runs import (
    Runs,
    learning_is_real,
    read_interval,
    replicas,
    shown,
    summary,
)
from sstl.report.spec import SpecError, load_spec, validate_figures, validate_spec
from sstl.report.tables import build_tables
from sstl.report.writers import write_tables
from sstl.runtime import command_parser, log_startup, setup_logging

log = logging.getLogger(__name__)

FIG1_LABELS = {"sstl": "SSTL", "sstl_wo_temp": "SSTL (w/o temp)", "random": "Random init",
               "supervised": "Supervised"}  # fmt: skip


def _json(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.is_file() else None


def make_figures(spec: dict, runs: Runs, out: Path) -> dict[str, list[str]]:
    """Draw the four figures; return, per figure, notes on what was not run."""
    missing: dict[str, list[str]] = {k: [] for k in ("figure1", "figure2", "figure4", "figure5")}
    fig1 = spec["figure1"]
    ds1 = fig1["dataset"] or "no dataset"
    sims = {}
    for key, exp in fig1.items():
        if key == "dataset":
            continue
        # an experiment with replicas: its first seed's run (a figure shows one model)
        path = runs / "analysis" / str(exp and replicas(spec, exp)[0]) / ds1 / "similarity.json"
        sims[FIG1_LABELS.get(key, key)] = _json(path) if exp and runs.has(path) else None
        if sims[FIG1_LABELS.get(key, key)] is None:
            why = f"{shown(path, runs)} missing" if exp else "no experiment assigned"
            missing["figure1"].append(f"{key}: not run: {why}")
    missing["figure2"] = list(missing["figure1"])
    figures.figure1(sims, out / "figure1.png", ds1)
    figures.figure2(sims, out / "figure2.png", ds1)
    fig4, bars = spec["figure4"], []
    for label, bar in (fig4.get("experiments") or {}).items():
        top1, ci, why = read_interval(
            spec, runs, "finetune", bar.get("exp"), fig4["dataset"], "top1"
        )
        bars.append(
            {"batch": bar["batch"], "dim": bar["dim"], "top1": top1, "ci95": ci, "reason": why}
        )
        if why:
            missing["figure4"].append(f"{label}: {why}")
    figures.figure4(bars, out / "figure4.png", fig4["dataset"] or "no dataset")
    fig5, tables = spec["figure5"], []
    for key in ("with_temp", "without_temp"):
        exp, ds = fig5.get(key), fig5["dataset"]
        run = exp and replicas(spec, exp)[0]
        path = runs / "finetune" / str(run) / str(ds) / "per_class.csv"
        ok = exp is not None and ds is not None and runs.has(path)
        tables.append(pd.read_csv(path) if ok else None)
        if not ok:
            why = f"{shown(path, runs)} missing" if exp and ds else "no experiment or dataset"
            missing["figure5"].append(f"{key}: not run: {why}")
    figures.figure5(
        *tables, out / "figure5.png", str(fig5["dataset"]), "; ".join(missing["figure5"])
    )
    return missing


def cli(argv: list[str]) -> int:
    parser = command_parser(
        "sstl report",
        "The paper's Tables 1-5 and Figures 1, 2, 4 and 5 from this project's runs, side by side\n"
        'with the published numbers. A cell whose run is missing says "not run" and why,\n'
        "never a number.\n\n"
        "Reads the metrics under RUNS; writes OUT/tables/table{1..5}.{csv,md,tex},\n"
        "OUT/figures/figure{1,2,4,5}.png, OUT/report.md (the page) and OUT/summary.json.",
        "sstl report --spec @report-spec.yaml --runs runs --out results\n"
        "--config config/config.yaml --manifests data/ucf101/manifest.csv",
    )
    parser.add_argument(
        "--spec",
        required=True,
        help="which experiment fills which table row: the report section of a config file plus "
        "the experiments run, as inline JSON or @file.yaml",
    )
    parser.add_argument("--runs", type=Path, required=True, help="the runs/ folder")
    parser.add_argument(
        "--inputs",
        type=Path,
        nargs="*",
        default=[],
        help="the result files to read (metrics.json, per_class.csv, similarity.json under "
        "--runs); nothing else in --runs is read",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder (results/)")
    parser.add_argument("--config", type=Path, help="the config file, recorded for provenance")
    parser.add_argument(
        "--manifests", type=Path, nargs="*", default=[], help="the datasets' manifest.csv files"
    )
    args = parser.parse_args(argv)
    setup_logging()
    try:
        spec = validate_figures(validate_spec(load_spec(args.spec)))
    except SpecError as err:
        parser.error(str(err))
    log_startup("report", spec)
    for path in [args.config, *args.manifests]:
        if path is not None and not path.is_file():
            parser.error(f"{path} does not exist")
    try:
        runs = Runs(args.inputs, args.runs)
    except ValueError as err:
        parser.error(str(err))
    provenance = provenance_of(args.config, args.manifests, spec)
    for ds, facts in provenance["manifests"].items():
        if facts.get("same_checksum"):
            log.warning(
                "%s: %d train/test pair(s) of videos have the same source checksum, e.g. %s "
                "(report.md lists them)",
                ds,
                facts["same_checksum"],
                facts["same_checksum_pairs"][0],
            )
    tables = build_tables(spec, runs, provenance)
    write_tables(tables, args.out / "tables")
    missing = make_figures(spec, runs, args.out / "figures")
    real = learning_is_real(spec, runs)
    text = report_md(spec, tables, real, missing, provenance, runs)
    (args.out / "report.md").write_text(text)
    write_json(args.out / "summary.json", summary(runs, tables, real, provenance))
    log.info("wrote %s", args.out / "report.md")
    return 0
