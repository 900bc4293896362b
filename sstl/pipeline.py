"""The pipeline's view of the config: validation, DVC params, targets, resources, report spec.

The Snakefile imports this module (through ``workflow/rules/common.smk``) so the logic that turns
``config/*.yaml`` into jobs is plain, tested Python rather than code inside rule files. What one
experiment runs (its overrides, kind, replicas and each stage's ``--cfg``) is
:mod:`sstl.experiments`, re-exported here for the rules; its table of sources
(:data:`~sstl.experiments.SOURCES`) also tells ``sstl dvc`` which leaf config keys each DVC stage
depends on: one definition, two readers.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from sstl import config as C
from sstl import slurm_job
from sstl.data.splits import official_dir
from sstl.experiments import (  # re-exported: the rules and tests read them from here
    EXPERIMENT_KEYS,
    INITS,
    PRETRAINED,
    SEEDED,
    SOURCES,
    SUPERVISED,
    PipelineConfigError,
    base_of,
    deep_merge,
    experiment,
    init_of,
    is_scratch,
    replicas,
    run_experiments,
    stage_config,
    validate_runs,
    weights_of,
)
from sstl.experiments import get as _get
from sstl.experiments import source as _source
from sstl.workflow_report import REPORT_SETTINGS, report_settings, report_spec, validate_report

__all__ = [
    "EXPERIMENT_KEYS",
    "INITS",
    "PRETRAINED",
    "SEEDED",
    "SOURCES",
    "SUPERVISED",
    "PipelineConfigError",
    "base_of",
    "deep_merge",
    "experiment",
    "init_of",
    "is_scratch",
    "replicas",
    "report_settings",
    "report_spec",
    "run_experiments",
    "stage_config",
    "weights_of",
]  # fmt: skip

SCHEMA = Path(__file__).resolve().parent.parent / "workflow" / "schemas" / "config.schema.yaml"


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
        if err.validator == "pattern" and "description" in err.schema:  # a name (exp_name, ...)
            named = "propertyNames" in err.schema_path
            what = f"{where}: the name" if named else f"{where} ="
            lines.append(f"{what} {err.instance!r} is not allowed: {err.schema['description']}")
        elif err.validator in ("enum", "type") and "description" in err.schema:  # a retired form
            lines.append(f"{where} = {err.instance!r}: {err.message} ({err.schema['description']})")
        elif err.validator == "additionalProperties":
            extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
            allowed = ", ".join(sorted(err.schema.get("properties", {})))
            lines.append(f"unknown key {where}.{extra[0]}: allowed keys here are {allowed}")
        else:
            lines.append(f"{where} = {err.instance!r}: {err.message}")
    raise PipelineConfigError("invalid config:\n  " + "\n  ".join(lines))


def name_pattern(kind: str, schema_path: Path = SCHEMA) -> str:
    """The schema's regex for ``exp_name`` or ``dataset_name``, unanchored (a wildcard constraint).

    One owner: the schema validates the config's names, the workflow's wildcards reuse it.
    """
    schema = yaml.safe_load(schema_path.read_text())
    return schema["$defs"][kind]["pattern"].removeprefix("^").removesuffix("$")


def _leaves(node: Any, prefix: str) -> list[str]:
    if isinstance(node, Mapping) and node:
        return [leaf for k, v in node.items() for leaf in _leaves(v, f"{prefix}.{k}")]
    return [prefix]


def param_keys(config: Mapping[str, Any], rule: str, wildcards: Mapping[str, str]) -> list[str]:
    """The leaf config keys a job of ``rule`` reads (for DVC's ``params:``), so a change to one
    experiment's settings touches only that experiment's stages."""
    exp, dataset = wildcards.get("exp"), wildcards.get("dataset")
    if exp is not None:
        exp = base_of(config, exp)  # a replica reads its experiment's keys
    keys: list[str] = []
    for _, path, left_out in SOURCES.get(rule, []):
        paths = [path]
        if exp is not None and path.split(".")[0] in EXPERIMENT_KEYS:
            paths.append(f"experiments.{exp}.{path}")
        for p in paths:
            node = _get(config, p)
            if isinstance(node, Mapping):
                for k, v in node.items():
                    keys += [] if k in left_out else _leaves(v, f"{p}.{k}")
            elif node is not None:
                keys.append(p)
    if rule in SEEDED:
        keys.append("seed")
        if exp is not None and _get(config, f"experiments.{exp}.seeds") is not None:
            keys.append(f"experiments.{exp}.seeds")  # a replica's seed
    if rule == "fetch":
        keys += _leaves(_get(config, f"datasets.{dataset}"), f"datasets.{dataset}")
    if rule == "extract" and _get(config, f"datasets.{dataset}.split") is not None:
        keys.append(f"datasets.{dataset}.split")
    if rule == "report":
        keys += [*_leaves(config.get("report"), "report"), "run"]
        keys += [f"experiments.{e}.description" for e, v in config["experiments"].items()
                 if (v or {}).get("description")]  # fmt: skip
        for exp in [None, *config.get("run", [])]:  # what report_settings reads
            base = "" if exp is None else f"experiments.{exp}."
            for path in REPORT_SETTINGS:
                node = _get(config, base + path)
                keys += [] if node is None else _leaves(node, base + path)
    return sorted(set(keys))


def cli_json(data: Mapping[str, Any]) -> str:
    """Shell-quoted compact JSON for ``--cfg`` (stable key order, so params compare equal)."""
    return shlex.quote(json.dumps(data, sort_keys=True, separators=(",", ":")))


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
    validate_runs(config)
    try:
        C.load_section(C.EvalConfig, config.get("evaluate"), "evaluate")
        C.load_section(C.StoreConfig, config.get("store"), "store")
        if "synthetic" in used_datasets(config):
            C.load_section(C.SyntheticConfig, config.get("synthetic"), "synthetic")
        datasets = {name: dataset_config(config, name) for name in used_datasets(config)}
    except C.ConfigError as err:
        raise PipelineConfigError(str(err)) from None
    validate_report(config)
    for name, ds in datasets.items():
        if name == "synthetic" and ds.source != "generate":
            raise PipelineConfigError("datasets.synthetic.source must be 'generate'")
        if check_paths and ds.source == "local" and not Path(ds.local_path).is_dir():
            raise PipelineConfigError(
                f"datasets.{name}.local_path = {ds.local_path!r} does not exist or is not a "
                f"folder: point it at the folder holding the {name} videos, or set "
                f"datasets.{name}.source: download"
            )
        if check_paths and ds.annotations and not Path(ds.annotations).expanduser().is_dir():
            raise PipelineConfigError(
                f"datasets.{name}.annotations = {ds.annotations!r} does not exist or is not a "
                f"folder: point it at the folder holding {name}'s split files, or remove the key "
                "to use the packaged official ones"
            )
    if check_paths:
        _check_pretraining_split(config)


def _check_pretraining_split(config: Mapping[str, Any]) -> None:
    """Kinetics-400 pretrains on its train split, whose train.csv is not packaged: it must be in
    ``annotations`` (or among the download ``urls``) before any job starts."""
    names = {
        _source(config, e, "pretrain").get("dataset")
        for e in run_experiments(config)
        if not is_scratch(config, e)
    }
    if "kinetics400" not in names:
        return
    ds = dataset_config(config, "kinetics400")
    folder = Path(ds.annotations).expanduser() if ds.annotations else official_dir("kinetics400")
    listed = (folder / "train.csv").is_file()
    if ds.source == "download" and (not ds.urls or "train.csv" in map(_file_name, ds.urls)):
        listed = True  # fetched with the archives (empty urls: the fetch job says what to do)
    if not listed:
        raise PipelineConfigError(
            f"pretrain.dataset is kinetics400, which pretrains on its train split, but {folder} "
            "has no train.csv: put Kinetics-400's train.csv (label,youtube_id,time_start,"
            "time_end,split) in a folder and set datasets.kinetics400.annotations to it (only "
            "validate.csv is packaged)"
        )


def _file_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def resources(config: Mapping[str, Any], rule: str) -> dict[str, Any]:
    """Job sizes of a rule: ``resources.default`` updated by ``resources.<rule>``."""
    res = deep_merge(
        config.get("resources", {}).get("default", {}), config.get("resources", {}).get(rule, {})
    )
    return res


def launcher(tasks: int, basedir: str | Path = ".") -> str:
    """Command prefix that starts one training process per task (shell-quoted: the checkout's
    path may hold spaces or ``$(...)``).

    Under a Slurm allocation ``srun`` starts the tasks (ranks from SLURM_*); elsewhere torchrun
    runs them on this machine. One task: no prefix.
    """
    if tasks <= 1:
        return ""
    script = Path(basedir) / "workflow" / "scripts" / "launch.sh"
    return f"{shlex.quote(str(script))} {int(tasks)}"


REPORT_OUTPUTS = [
    *(f"results/tables/table{i}.{ext}" for i in range(1, 6) for ext in ("csv", "md", "tex")),
    *(f"results/figures/figure{i}.png" for i in (1, 2, 4, 5)),
    "results/report.md",
    "results/summary.json",
]


# the training curves each training job writes into its run folder (sstl.train.curves)
CURVE_FILES = {
    "pretrain": ("curves.csv", "epochs.csv", "curves.png"),
    "finetune": ("curves.csv", "epochs.csv", "validation.csv", "curves.png"),
}


def curve_targets(config: Mapping[str, Any]) -> list[str]:
    """The training curves of every training job of the config. Final targets: Snakemake checks
    only the requested outputs of a finished job, so a job run before the curves existed would
    never write them (a rerun resumes from its saved state and only writes the outputs)."""
    out = []
    for exp in run_experiments(config):
        if init_of(config, exp) == PRETRAINED:
            out += [f"runs/pretrain/{exp}/{name}" for name in CURVE_FILES["pretrain"]]
        if init_of(config, exp) == SUPERVISED:  # trained like a fine-tuning
            out += [f"runs/supervised/{exp}/{name}" for name in CURVE_FILES["finetune"]]
        for ds in config.get("finetune", {}).get("datasets", []):
            out += [f"runs/finetune/{exp}/{ds}/{name}" for name in CURVE_FILES["finetune"]]
    return out


def final_targets(config: Mapping[str, Any]) -> list[str]:
    return [*REPORT_OUTPUTS, *curve_targets(config)]
