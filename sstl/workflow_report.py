"""The report spec the workflow hands ``sstl report``, built from the config (which run fills
which paper cell, the replicas of each experiment, what each ran) and checked before any job
runs, so a bad mapping fails now rather than in the last job after all the training."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sstl import config as C
from sstl.experiments import (
    SUPERVISED,
    PipelineConfigError,
    init_of,
    is_scratch,
    replicas,
    stage_config,
)
from sstl.files import config_hash

# the config keys report_settings reads (per experiment, for DVC's params of the report)
REPORT_SETTINGS = ("init", "pretrain.dataset", "pretrain.model", "finetune.model",
                   "finetune.clip_len", "finetune.spatial.crop_size")  # fmt: skip


def report_settings(config: Mapping[str, Any], exp: str) -> dict[str, Any]:
    """What experiment ``exp`` ran, for the report's descriptive columns (backbone, fine-tuning
    input size and clip length, pretraining data) beside the paper's."""
    ft = C.load_section(C.FinetuneConfig, stage_config(config, "finetune", exp), "finetune")
    m = ft.model
    backbone = "R3D-18" if m.arch == "r3d_18" else f"{m.arch} (width {m.width})"
    return {
        "backbone": backbone + ("" if m.stem_pool == "none" else f", {m.stem_pool} stem max-pool"),
        "finetune_input": f"{ft.spatial.crop_size}×{ft.spatial.crop_size}, {ft.clip_len} frames",
        "pretrain_data": None
        if is_scratch(config, exp)
        else stage_config(config, "pretrain", exp)["dataset"]
        + (" (labels)" if init_of(config, exp) == SUPERVISED else ""),
    }


def report_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """What ``sstl report`` needs: the table mapping, which experiments ran, their replicas (the
    runs of an experiment with ``seeds``, folded into one cell), what each ran (``settings``),
    and the config hash."""
    ran = [e for e in config.get("run") or [] if e in (config.get("experiments") or {})]
    return {
        **dict(config.get("report") or {}),
        "run": list(config.get("run") or []),
        "replicas": {e: replicas(config, e) for e in ran if replicas(config, e) != [e]},
        "settings": {e: report_settings(config, e) for e in ran},
        "experiments": {
            k: (v or {}).get("description", "") for k, v in config["experiments"].items()
        },
        # job sizes change where and how fast a job runs, not what the report shows
        "config_hash": config_hash({k: v for k, v in config.items() if k != "resources"}),
    }


def validate_report(config: Mapping[str, Any]) -> None:
    """The report spec, checked now rather than by the last job after all the training."""
    from sstl.report.spec import SpecError, validate_figures, validate_spec

    try:
        spec = validate_figures(validate_spec(report_spec(config)))
    except SpecError as err:
        raise PipelineConfigError(f"report: {err}") from None
    defined = set(config.get("experiments") or {})
    for section in ("table1", "table2", "table3", "table4", "table5", "figure1", "figure5"):
        for cell, exp in (spec.get(section) or {}).items():
            if cell != "dataset" and exp is not None and exp not in defined:
                raise PipelineConfigError(
                    f"report.{section}.{cell} = {exp!r} is not an experiment defined under "
                    f"experiments:; defined: {', '.join(sorted(defined))}"
                )
    for label, bar in (spec["figure4"].get("experiments") or {}).items():
        if bar.get("exp") is not None and bar["exp"] not in defined:
            raise PipelineConfigError(
                f"report.figure4.experiments.{label}.exp = {bar['exp']!r} is not an experiment "
                f"defined under experiments:"
            )
