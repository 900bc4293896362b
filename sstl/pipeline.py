"""The pipeline's view of the config: validation, per-experiment resolution, targets, resources.

The Snakefile imports this module (through ``workflow/rules/common.smk``) so the logic that turns
``config/*.yaml`` into jobs is plain, tested Python rather than code inside rule files. Every rule's
``params:`` is built from :func:`stage_config`, and the same key lists (:data:`PARAM_KEYS`) tell
``sstl dvc`` which config keys each DVC stage depends on: one definition, two readers.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sstl import config as C
from sstl import slurm_job

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"

# rule -> the top-level config keys its params read (for DVC `params:` and for documentation).
PARAM_KEYS: dict[str, list[str]] = {
    "synthetic": ["synthetic"],
    "fetch": ["datasets"],
    "extract": ["store", "datasets"],
    "manifest": [],
    "pretrain": ["seed", "pretrain", "experiments"],
    "finetune": ["seed", "finetune", "experiments"],
    "evaluate": ["evaluate", "experiments"],
    "retrieve": ["seed", "retrieval", "pretrain.model", "experiments"],
    "analyse": ["seed", "analysis", "pretrain.model", "pretrain.temporal", "experiments"],
    "report": ["report", "run"],
}

# Experiment override sections and what they override.
EXPERIMENT_KEYS = {"init", "pretrain", "finetune", "retrieval", "analysis", "description"}


class PipelineConfigError(ValueError):
    """The config cannot run; the message names the key, the value and what is allowed."""


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """``base`` updated recursively by ``override`` (mappings merge, everything else replaces)."""
    out = copy.deepcopy(dict(base))
    for key, value in (override or {}).items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _path_str(path: Any) -> str:
    parts = [str(p) if not isinstance(p, int) else f"[{p}]" for p in path]
    return ".".join(parts).replace(".[", "[") or "config"


def validate_schema(config: Mapping[str, Any], schema_path: Path = SCHEMA) -> None:
    """JSON-schema validation with one readable message per error (all errors, not just one)."""
    import jsonschema

    schema = yaml.safe_load(schema_path.read_text())
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if not errors:
        return
    lines = []
    for err in errors:
        where = _path_str(err.absolute_path)
        if err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            allowed = ", ".join(sorted(err.schema.get("properties", {})))
            lines.append(f"unknown key {where}.{extra[0]}: allowed keys here are {allowed}")
        else:
            lines.append(f"{where} = {err.instance!r}: {err.message}")
    raise PipelineConfigError("invalid config:\n  " + "\n  ".join(lines))


def experiment(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The experiment's overrides (``init`` defaults to ``pretrained``)."""
    exps = config.get("experiments", {})
    if name not in exps:
        raise PipelineConfigError(
            f"experiment {name!r} is not defined; defined: {', '.join(sorted(exps))}"
        )
    exp = dict(exps[name] or {})
    exp.setdefault("init", "pretrained")
    return exp


def is_scratch(config: Mapping[str, Any], name: str) -> bool:
    return experiment(config, name)["init"] == "scratch"


def _section(config: Mapping[str, Any], exp: str | None, key: str) -> dict[str, Any]:
    base = copy.deepcopy(dict(config.get(key) or {}))
    if exp is not None:
        base = deep_merge(base, experiment(config, exp).get(key))
    return base


def stage_config(config: Mapping[str, Any], stage: str, exp: str | None = None) -> dict[str, Any]:
    """The JSON a rule hands to ``sstl <stage> --cfg``: only the keys that stage reads."""
    seed = config.get("seed", 0)
    if stage == "synthetic":
        return dict(config["synthetic"])
    if stage == "extract":
        return {"store": dict(config["store"])}
    if stage == "pretrain":
        cfg = _section(config, exp, "pretrain")
        cfg.setdefault("run", {}).setdefault("seed", seed)
        return cfg
    if stage == "finetune":
        cfg = _section(config, exp, "finetune")
        cfg.pop("datasets", None)
        cfg.setdefault("model", _section(config, exp, "pretrain").get("model", {}))
        cfg.setdefault("run", {}).setdefault("seed", seed)
        return cfg
    if stage == "evaluate":
        cfg = dict(config.get("evaluate") or {})
        return cfg
    if stage == "retrieve":
        cfg = _section(config, exp, "retrieval")
        cfg.pop("datasets", None)
        model = _section(config, exp, "pretrain").get("model", {})
        return {"retrieval": cfg, "model": model, "seed": seed}
    if stage == "analyse":
        cfg = _section(config, exp, "analysis")
        for k in ("dataset", "experiments"):
            cfg.pop(k, None)
        pre = _section(config, exp, "pretrain")
        return {
            "analysis": cfg,
            "model": pre.get("model", {}),
            "temporal": pre.get("temporal", {}),
            "seed": seed,
        }
    raise KeyError(stage)


def cli_json(data: Mapping[str, Any]) -> str:
    """Shell-quoted compact JSON for ``--cfg`` (stable key order, so params compare equal)."""
    return shlex.quote(json.dumps(data, sort_keys=True, separators=(",", ":")))


def config_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_experiments(config: Mapping[str, Any]) -> list[str]:
    return list(config.get("run") or [])


def dataset_config(config: Mapping[str, Any], name: str) -> C.DatasetConfig:
    entries = config.get("datasets", {})
    if name not in entries:
        raise PipelineConfigError(
            f"dataset {name!r} is used but not defined under datasets:; defined: "
            f"{', '.join(sorted(entries))}"
        )
    return C.load_section(C.DatasetConfig, entries[name], f"datasets.{name}")


def used_datasets(config: Mapping[str, Any]) -> list[str]:
    names = [config["pretrain"]["dataset"]]
    names += list(config.get("finetune", {}).get("datasets", []))
    names += list(config.get("retrieval", {}).get("datasets", []))
    if config.get("analysis", {}).get("dataset"):
        names.append(config["analysis"]["dataset"])
    return list(dict.fromkeys(names))


def validate(
    config: Mapping[str, Any], schema_path: Path = SCHEMA, check_paths: bool = True
) -> None:
    """Everything that can be checked before a job runs: schema, then each resolved stage config.

    The dataclasses add the checks a schema cannot express (n_drop against the window, ...), so a
    bad experiment fails here rather than hours later on the cluster.
    """
    try:
        slurm_job.check_cluster_keys(config)
        validate_schema(config, schema_path)
        for rule in config.get("resources") or {}:
            slurm_job.check_warning(rule, resources(config, rule))
    except slurm_job.SlurmJobError as err:
        raise PipelineConfigError(str(err)) from None
    for name in run_experiments(config):
        if name not in config.get("experiments", {}):
            raise PipelineConfigError(
                f"run: experiment {name!r} is not defined under experiments:; defined: "
                f"{', '.join(sorted(config.get('experiments', {})))}"
            )
        unknown = set(experiment(config, name)) - EXPERIMENT_KEYS
        if unknown:
            raise PipelineConfigError(
                f"unknown key experiments.{name}.{sorted(unknown)[0]}: allowed keys are "
                f"{', '.join(sorted(EXPERIMENT_KEYS))}"
            )
        try:
            if not is_scratch(config, name):
                C.load_section(C.PretrainConfig, stage_config(config, "pretrain", name), "pretrain")
            C.load_section(C.FinetuneConfig, stage_config(config, "finetune", name), "finetune")
            rcfg = stage_config(config, "retrieve", name)
            C.load_section(C.RetrievalConfig, rcfg["retrieval"], "retrieval")
            C.load_section(
                C.AnalysisConfig, stage_config(config, "analyse", name)["analysis"], "analysis"
            )
        except C.ConfigError as err:
            raise PipelineConfigError(f"experiment {name!r}: {err}") from None
    C.load_section(C.EvalConfig, config.get("evaluate"), "evaluate")
    C.load_section(C.StoreConfig, config.get("store"), "store")
    if "synthetic" in used_datasets(config):
        C.load_section(C.SyntheticConfig, config.get("synthetic"), "synthetic")
    for name in used_datasets(config):
        ds = dataset_config(config, name)
        if name == "synthetic" and ds.source != "generate":
            raise PipelineConfigError("datasets.synthetic.source must be 'generate'")
        if check_paths and ds.source == "local" and not Path(ds.local_path).is_dir():
            raise PipelineConfigError(
                f"datasets.{name}.local_path = {ds.local_path!r} does not exist or is not a "
                f"folder: point it at the folder holding the {name} videos, or set "
                f"datasets.{name}.source: download"
            )


def resources(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """Job sizes of a rule: ``resources.default`` updated by ``resources.<rule>``."""
    res = deep_merge(
        config.get("resources", {}).get("default", {}), config.get("resources", {}).get(rule, {})
    )
    return res


def launcher(tasks: int, basedir: str | Path = ".") -> str:
    """Command prefix that starts one training process per task.

    Under a Slurm allocation ``srun`` starts the tasks (ranks from SLURM_*); elsewhere torchrun
    runs them on this machine. One task: no prefix.
    """
    if tasks <= 1:
        return ""
    return f"{Path(basedir) / 'workflow' / 'scripts' / 'launch.sh'} {tasks}"


REPORT_OUTPUTS = [
    *(f"results/tables/table{i}.{ext}" for i in range(1, 6) for ext in ("csv", "md", "tex")),
    *(f"results/figures/figure{i}.png" for i in (1, 2, 4, 5)),
    "results/report.md",
    "results/summary.json",
]


def final_targets(config: Mapping[str, Any]) -> list[str]:
    return list(REPORT_OUTPUTS)


def report_spec(config: Mapping[str, Any]) -> dict[str, Any]:
    """What ``sstl report`` needs: the table mapping, which experiments ran, and the config hash."""
    return {
        **dict(config.get("report") or {}),
        "run": run_experiments(config),
        "experiments": {
            k: (v or {}).get("description", "") for k, v in config["experiments"].items()
        },
        "config_hash": config_hash(config),
    }
