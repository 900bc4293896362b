"""What one experiment of the config runs: its overrides, its kind, its replicas, and the job
config each stage of it reads.

An experiment (``experiments.<name>``) overrides the sections of :data:`EXPERIMENT_KEYS`. Its
``init`` says where its backbone comes from (:data:`INITS`); with ``seeds: [s, ...]`` it runs once
per seed, each replica a run of its own named ``<name>_seed<s>`` (:func:`run_experiments`) that
the report folds back into one cell with an interval.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

from sstl import config as C

# Experiment override sections and what they override.
EXPERIMENT_KEYS = {"init", "seeds", "pretrain", "finetune", "retrieval", "analysis", "description"}
# where an experiment's backbone comes from: SSTL pretraining, a random init, or training with
# labels on the pretraining set (the supervised reference of Figures 1 and 2)
PRETRAINED, SUPERVISED = "pretrained", "supervised"
INITS = (PRETRAINED, C.SCRATCH, SUPERVISED)
REPLICA = re.compile(r"^(?P<base>.+)_seed(?P<seed>\d+)$")


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


def replica_name(name: str, seed: int) -> str:
    return f"{name}_seed{seed}"


def replicas(config: Mapping[str, Any], name: str) -> list[str]:
    """The runs of experiment ``name``: one per seed of its ``seeds``, else the name itself."""
    seeds = ((config.get("experiments") or {}).get(name) or {}).get("seeds")
    return [replica_name(name, s) for s in seeds] if seeds else [name]


def _resolve(config: Mapping[str, Any], name: str) -> tuple[str, int | None]:
    """(defined experiment, replica seed or None) of a run name."""
    exps = config.get("experiments") or {}
    if name in exps:
        return name, None
    match = REPLICA.match(name)
    if match and match["base"] in exps:
        seed = int(match["seed"])
        if seed in ((exps[match["base"]] or {}).get("seeds") or []):
            return match["base"], seed
    raise PipelineConfigError(
        f"experiment {name!r} is not defined; defined: {', '.join(sorted(exps))}"
    )


def base_of(config: Mapping[str, Any], name: str) -> str:
    """The experiment a run belongs to (itself unless it is a replica)."""
    return _resolve(config, name)[0]


def experiment(config: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The overrides of a run (an experiment, or one of its replicas, which adds ``seed``);
    ``init`` defaults to ``pretrained``."""
    base, seed = _resolve(config, name)
    exp = dict((config.get("experiments") or {})[base] or {})
    exp.setdefault("init", PRETRAINED)
    if seed is not None:
        exp["seed"] = seed
    return exp


def init_of(config: Mapping[str, Any], name: str) -> str:
    return experiment(config, name)["init"]


def is_scratch(config: Mapping[str, Any], name: str) -> bool:
    return init_of(config, name) == C.SCRATCH


def run_experiments(config: Mapping[str, Any]) -> list[str]:
    """The runs of the config: ``run:``'s experiments, each expanded into its replicas."""
    return [r for name in config.get("run") or [] for r in replicas(config, name)]


def weights_of(config: Mapping[str, Any], name: str) -> str:
    """What a run's downstream stages start from: a weights file, or ``scratch``."""
    kind = init_of(config, name)
    if kind == C.SCRATCH:
        return C.SCRATCH
    return f"runs/{'supervised' if kind == SUPERVISED else 'pretrain'}/{name}/weights.pt"


# stage -> where each part of its ``--cfg`` comes from: (key in the job config, or None for the
# whole section; the config section; keys of it the stage does not read). Sections an experiment
# may override (EXPERIMENT_KEYS) are merged with ``experiments.<exp>.<section>``. One table, two
# readers: :func:`stage_config` builds the job config from it and ``sstl.pipeline.param_keys``
# tells DVC which leaf keys each stage depends on. ``supervise`` trains the pretraining backbone
# with labels, with the fine-tuning recipe.
FINETUNE_SOURCES = [(None, "finetune", ("datasets",)), ("model", "pretrain.model", ())]
SOURCES: dict[str, list[tuple[str | None, str, tuple[str, ...]]]] = {
    "synthetic": [(None, "synthetic", ())],
    "extract": [("store", "store", ())],
    "pretrain": [(None, "pretrain", ())],
    "supervise": FINETUNE_SOURCES,
    "finetune": FINETUNE_SOURCES,
    "evaluate": [(None, "evaluate", ())],
    "retrieve": [("retrieval", "retrieval", ("datasets",)), ("model", "pretrain.model", ())],
    "analyse": [
        ("analysis", "analysis", ("dataset",)),
        ("model", "pretrain.model", ()),
        ("rate_range", "pretrain.temporal.rate_range", ()),
    ],
}
# stage -> where the global ``seed`` (a replica's own seed) goes when the stage's section does
# not set it
SEEDED = {"pretrain": ("run", "seed"), "supervise": ("run", "seed"), "finetune": ("run", "seed"),
          "retrieve": ("seed",), "analyse": ("seed",)}  # fmt: skip


def get(config: Mapping[str, Any], path: str) -> Any:
    node: Any = config
    for key in path.split("."):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def source(config: Mapping[str, Any], exp: str | None, path: str) -> Any:
    """``config[path]`` merged with ``experiments.<exp>.<path>`` (when the section is one an
    experiment may override)."""
    value = get(config, path)
    override = get(experiment(config, exp), path) if exp is not None else None
    if path.split(".")[0] not in EXPERIMENT_KEYS:
        override = None
    if not isinstance(value, Mapping) and not isinstance(override, Mapping):  # a leaf setting
        return copy.deepcopy(override if override is not None else value)
    return deep_merge(dict(value or {}), override)


def stage_config(config: Mapping[str, Any], stage: str, exp: str | None = None) -> dict[str, Any]:
    """The JSON a rule hands to ``sstl <stage> --cfg``: only the keys that stage reads."""
    if stage not in SOURCES:
        raise KeyError(stage)
    job: dict[str, Any] = {}
    for key, path, left_out in SOURCES[stage]:
        part = source(config, exp, path)
        if isinstance(part, dict):
            part = {k: v for k, v in part.items() if k not in left_out}
        if part is None:
            continue  # not set: the job config's default applies
        if key is None:
            job.update(part)
        else:
            job.setdefault(key, part)  # a section of the stage's own wins (finetune.model)
    if stage in SEEDED:
        *outer, last = SEEDED[stage]
        node = job
        for key in outer:
            node = node.setdefault(key, {})
        seed = experiment(config, exp).get("seed") if exp is not None else None
        if seed is not None:
            node[last] = seed  # a replica: its seed is the point of the run
        node.setdefault(last, config.get("seed", 0))
    return job


# Per-experiment stages and the typed job config each command reads its --cfg into.
JOBS = {
    "pretrain": C.PretrainConfig,
    "supervise": C.FinetuneConfig,
    "finetune": C.FinetuneConfig,
    "retrieve": C.RetrieveJob,
    "analyse": C.AnalyseJob,
}
# the stage that makes a run's starting weights, by its init (scratch has none)
TRAINS = {PRETRAINED: "pretrain", SUPERVISED: "supervise"}


def validate_runs(config: Mapping[str, Any]) -> None:
    """The run list: defined experiments, known override keys, run names that do not collide,
    and every stage config of every run loading into its dataclass."""
    defined = config.get("experiments") or {}
    for name in config.get("run") or []:
        if name not in defined:
            raise PipelineConfigError(
                f"run: experiment {name!r} is not defined under experiments:; defined: "
                f"{', '.join(sorted(defined))}"
            )
        unknown = set(defined[name] or {}) - EXPERIMENT_KEYS
        if unknown:
            raise PipelineConfigError(
                f"unknown key experiments.{name}.{sorted(unknown)[0]}: allowed keys are "
                f"{', '.join(sorted(EXPERIMENT_KEYS))}"
            )
    runs = run_experiments(config)
    for name in runs:
        if runs.count(name) > 1 or (name in defined and name not in (config.get("run") or [])):
            raise PipelineConfigError(
                f"run {name!r} is named twice: an experiment of that name and a replica (seeds) "
                "of another; rename one"
            )
        try:
            for stage, job in JOBS.items():
                if stage in TRAINS.values() and stage != TRAINS.get(init_of(config, name)):
                    continue  # a run trains its starting weights one way, or not at all
                where = stage if stage in ("pretrain", "finetune") else ""  # as in the file
                C.load_section(job, stage_config(config, stage, name), where)
        except C.ConfigError as err:
            raise PipelineConfigError(f"experiment {name!r}: {err}") from None
