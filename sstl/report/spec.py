"""The report spec: which of our runs fills which paper cell, read and checked.

Its format is documented in :mod:`sstl.report.build` (the ``sstl report --spec`` argument).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from sstl.report.paper import TABLES, load_paper

SPEC_OPTIONAL = ("experiments", "run", "replicas", "config_hash", "settings", "figure1", "figure4",
                 "figure5")  # fmt: skip
SETTING_KEYS = ("backbone", "finetune_input", "pretrain_data")


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
    settings = spec.get("settings") or {}
    if not isinstance(settings, dict) or not all(
        isinstance(v, dict) and set(v) <= set(SETTING_KEYS) for v in settings.values()
    ):
        raise SpecError(
            f"report spec settings = {settings!r}: a mapping experiment -> {{"
            + ", ".join(SETTING_KEYS)
            + "}"
        )
    out["settings"] = settings
    reps = spec.get("replicas") or {}
    if not isinstance(reps, dict) or not all(
        isinstance(v, list) and v and all(isinstance(r, str) for r in v) for v in reps.values()
    ):
        raise SpecError(f"report spec replicas = {reps!r}: a mapping experiment -> [run names]")
    out["replicas"] = reps
    if not isinstance(spec.get("config_hash", ""), str):
        raise SpecError(f"report spec config_hash = {spec['config_hash']!r}: a string")
    return out


def load_spec(text: str) -> dict[str, Any]:
    """The ``--spec`` argument: inline JSON, or ``@file`` holding JSON or YAML."""
    try:
        if text.startswith("@"):
            return yaml.safe_load(Path(text[1:]).read_text())
        return json.loads(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as err:
        raise SpecError(f"--spec {text[:60]!r}: not readable JSON/YAML ({err})") from err


def validate_figures(spec: dict[str, Any]) -> dict[str, Any]:
    """Check the figure sections of the spec and fill their defaults.

    Format: the ``sstl.report.build`` docstring.
    """
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
