"""The config contract: schema <-> dataclasses, commented keys, and bad configs stopped early.

Bad configs are checked twice: through ``sstl.pipeline.validate`` and through a real
``snakemake -n``, which must exit non-zero before any job runs and print the same message.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal

import jsonschema
import pytest
import yaml

from sstl import config as C
from sstl import pipeline as P

REPO = Path(__file__).resolve().parents[2]

# schema section -> (dataclass, schema-only keys the workflow reads before building the dataclass)
MIRRORS: dict[str, tuple[type, set[str]]] = {
    "model": (C.ModelConfig, set()),
    "temporal": (C.TemporalConfig, set()),
    "spatial": (C.SpatialConfig, set()),
    "memory": (C.MemoryConfig, set()),
    "loss": (C.LossConfig, set()),
    "optim": (C.OptimConfig, set()),
    "run": (C.RunConfig, set()),
    "pretrain": (C.PretrainConfig, set()),
    "finetune": (C.FinetuneConfig, {"datasets"}),
    "retrieval": (C.RetrievalConfig, {"datasets"}),
    "analysis": (C.AnalysisConfig, {"dataset"}),
    "evaluate": (C.EvalConfig, set()),
    "store": (C.StoreConfig, set()),
    "synthetic": (C.SyntheticConfig, set()),
    "datasets.*": (C.DatasetConfig, set()),
}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return yaml.safe_load(P.SCHEMA.read_text())


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _section(schema: dict[str, Any], name: str) -> dict[str, Any]:
    """The schema of a mirrored section, wherever it is kept ($defs or top-level properties)."""
    if name == "datasets.*":
        return schema["properties"]["datasets"]["additionalProperties"]
    if name in schema["$defs"]:
        return schema["$defs"][name]
    return _resolve(schema, schema["properties"][name])


def _json_kinds(tp: Any) -> set[str]:
    """The JSON types a dataclass annotation accepts."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if dataclasses.is_dataclass(tp) or tp is dict or origin is dict:
        return {"object"}
    if origin is Literal:
        return {_value_kind(a) for a in args}
    if origin in (typing.Union, types.UnionType):
        return set().union(*(_json_kinds(a) for a in args))
    if tp is type(None):
        return {"null"}
    if tp is tuple or origin is tuple:
        return {"array"}
    return {{bool: "boolean", int: "integer", float: "number", str: "string"}[tp]}


def _value_kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}[type(value)]


def _schema_kinds(schema: dict[str, Any], prop: dict[str, Any]) -> set[str]:
    prop = _resolve(schema, prop)
    if "enum" in prop:
        return {_value_kind(v) for v in prop["enum"]}
    kinds = prop["type"]
    return set(kinds) if isinstance(kinds, list) else {kinds}


@pytest.mark.parametrize("name", list(MIRRORS))
def test_schema_keys_equal_dataclass_fields(schema, name):
    cls, extras = MIRRORS[name]
    props = set(_section(schema, name)["properties"])
    fields = {f.name for f in dataclasses.fields(cls)}
    assert props == fields | extras, (
        f"schema section {name!r} and {cls.__name__} drifted: only in the schema "
        f"{sorted(props - fields - extras)}, only in the dataclass {sorted(fields - props)} "
        f"(edit workflow/schemas/config.schema.yaml and sstl/config/ together)"
    )


@pytest.mark.parametrize("name", list(MIRRORS))
def test_schema_types_match_dataclass_annotations(schema, name):
    cls, _ = MIRRORS[name]
    section = _section(schema, name)
    hints = typing.get_type_hints(cls)
    wrong = {}
    for f in dataclasses.fields(cls):
        prop = section["properties"].get(f.name)
        if prop is None:
            continue  # reported by the key test
        want, have = _json_kinds(hints[f.name]), _schema_kinds(schema, prop)
        if want != have:
            wrong[f.name] = (sorted(want), sorted(have))
    assert not wrong, f"{cls.__name__} vs schema {name!r}: field -> (dataclass, schema): {wrong}"


@pytest.mark.parametrize("name", list(MIRRORS))
def test_dataclass_defaults_pass_the_schema(schema, name):
    cls, _ = MIRRORS[name]
    defaults = json.loads(json.dumps(C.to_dict(cls())))  # tuples -> lists, as in YAML
    sub = {"$defs": schema["$defs"], **_section(schema, name)}
    errors = [e.message for e in jsonschema.Draft202012Validator(sub).iter_errors(defaults)]
    assert not errors, f"{cls.__name__}() defaults rejected by schema {name!r}: {errors}"


# --- every key of config/config.yaml carries a comment -------------------------------------------


def test_comment_rule_finds_a_missing_comment(uncommented_keys):
    text = (
        "a:  # section\n  x: 1  # documented\n  y: 2\nb:\n  z: 3  # documented\n"
        "c:  # same section name later\n  a:\n    x: 5\n"
    )
    assert uncommented_keys(text) == ["a.y (line 3)", "b (line 4)"]


def test_every_key_of_config_yaml_is_commented(uncommented_keys):
    missing = uncommented_keys((REPO / "config" / "config.yaml").read_text())
    assert not missing, (
        "config/config.yaml: these keys have no comment (add `# what it is` on the line):\n  "
        + "\n  ".join(missing)
    )


# --- valid configs ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["config", "tiny", "paper"])
def test_committed_configs_validate(configs, name):
    P.validate(configs[name], check_paths=True)


def test_schema_reports_every_error_at_once(configs, with_key):
    bad = with_key(configs["config"], "pretrain.optim.batch_size", "big")
    bad = with_key(bad, "store.crf", "high")
    with pytest.raises(P.PipelineConfigError) as err:
        P.validate(bad)
    assert "pretrain.optim.batch_size" in str(err.value)
    assert "store.crf = 'high'" in str(err.value)


# --- bad configs: rejected before any job, with key, value and what is allowed ----------------


def _local_missing(cfg: dict[str, Any], with_key: Callable, tmp: Path) -> dict[str, Any]:
    cfg = with_key(cfg, "datasets.ucf101", {"source": "local", "local_path": str(tmp / "UCF-101")})
    return with_key(cfg, "finetune.datasets", [*cfg["finetune"]["datasets"], "ucf101"])


def _kinetics_without_train(cfg: dict[str, Any], with_key: Callable, tmp: Path) -> dict[str, Any]:
    """Pretraining on a local Kinetics-400 copy whose annotation folder has no train.csv."""
    (tmp / "k400").mkdir()
    (tmp / "notes").mkdir()
    (tmp / "notes" / "validate.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    ds = {"source": "local", "local_path": str(tmp / "k400"), "annotations": str(tmp / "notes")}
    return with_key(with_key(cfg, "datasets.kinetics400", ds), "pretrain.dataset", "kinetics400")


# id -> (make the bad config from config.yaml, texts the message must contain)
# (a compiled pattern must match: the key `run` as a word, not inside another word)
BAD: dict[str, tuple[Callable[..., dict[str, Any]], list[str | re.Pattern]]] = {
    "wrong_type": (
        lambda c, k, t: k(c, "pretrain.optim.batch_size", "big"),
        ["pretrain.optim.batch_size", "'big'", "integer"],
    ),
    "unknown_key": (
        lambda c, k, t: k(c, "pretrain.memroy", {"slots": 2}),
        ["pretrain.memroy", "memory", "optim"],
    ),
    "negative_batch": (
        lambda c, k, t: k(c, "pretrain.optim.batch_size", -4),
        ["pretrain.optim.batch_size", "-4", "an integer >= 1"],
    ),
    "missing_local_path": (
        _local_missing,
        ["datasets.ucf101.local_path", "UCF-101", "does not exist", "source: download"],
    ),
    "kinetics_without_train_csv": (
        _kinetics_without_train,
        [
            "pretrain.dataset is kinetics400",
            "notes has no train.csv",
            "datasets.kinetics400.annotations",
        ],
    ),
    "unknown_experiment": (
        lambda c, k, t: k(c, "run", [*c["run"], "nosuch"]),
        [re.compile(r"\brun\b"), "'nosuch'", "sstl_no_temp"],
    ),
    "n_drop_too_large": (
        lambda c, k, t: k(
            c,
            "experiments.sstl_no_temp.pretrain.temporal",
            {"buffer": 2, "n_drop": 6, "speed_distortion": False},
        ),
        ["sstl_no_temp", "pretrain.temporal.n_drop", "6", "buffer=2"],
    ),
    "boolean_stem_pool": (
        lambda c, k, t: k(c, "pretrain.model.stem_pool", True),
        ["pretrain.model.stem_pool = True", "space for the old true", "spacetime"],
    ),
    "negative_temperature": (
        lambda c, k, t: k(c, "pretrain.loss.temperature", -0.1),
        ["pretrain.loss.temperature", "-0.1", "a number > 0"],
    ),
    "shell_in_experiment_name": (
        lambda c, k, t: k(
            k(c, "experiments.x; touch y", {"description": "evil"}), "run", ["x; touch y"]
        ),
        ["experiments: the name 'x; touch y' is not allowed", "letters, digits and _"],
    ),
    "command_in_run": (
        lambda c, k, t: k(c, "run", ["$(touch PWNED)"]),
        ["run[0] = '$(touch PWNED)' is not allowed", "letters, digits and _"],
    ),
    "space_in_dataset_name": (
        lambda c, k, t: k(
            k(c, "datasets.ucf 101", {"source": "download"}),
            "finetune.datasets",
            ["synthetic", "ucf 101"],
        ),
        ["datasets: the name 'ucf 101' is not allowed", "finetune.datasets[1] = 'ucf 101'"],
    ),
}


@pytest.mark.parametrize(
    ("key", "value"),
    [("partition", "gpu; touch x"), ("partition", "a b"), ("account", "$(id)")],
)
def test_slurm_names_in_the_config_are_refused_with_where_they_go(configs, key, value):
    """Hostile or not, a partition or account never reaches a job from the config: the profile
    owns them (and the executor plugin quotes them)."""
    cfg = configs["paper"]
    cfg["resources"]["pretrain"][key] = value
    with pytest.raises(P.PipelineConfigError) as err:
        P.validate(cfg, check_paths=False)
    assert f"resources.pretrain.{key} = {value!r}: the config holds job sizes only" in str(
        err.value
    )
    assert f"slurm_{key}" in str(err.value)


HOSTILE_NAMES = ["x; touch y", "$(touch PWNED)", "a b", "../up", "-rf", "it's", "`id`", "",
                 "é", "a/b", "a\nb", "*", "x>y", "a|b"]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_hostile_experiment_and_dataset_names_are_refused(configs, name):
    cfg = configs["config"]
    cfg["experiments"][name] = {"description": "d"}
    with pytest.raises(P.PipelineConfigError, match="not allowed") as err:
        P.validate(cfg)
    assert repr(name) in str(err.value)
    del cfg["experiments"][name]
    cfg["datasets"][name] = {"source": "download"}
    with pytest.raises(P.PipelineConfigError, match="lower-case letters and digits") as err:
        P.validate(cfg)
    assert repr(name) in str(err.value)


def _absent(wanted: list[str | re.Pattern], text: str) -> list[str]:
    return [
        w.pattern if isinstance(w, re.Pattern) else w
        for w in wanted
        if (w.search(text) is None if isinstance(w, re.Pattern) else w not in text)
    ]


@pytest.fixture(scope="module")
def bad_configs(
    config_loader, with_key, tmp_path_factory
) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each bad config written to its own folder: (folder, config)."""
    out = {}
    for case, (make, _) in BAD.items():
        folder = tmp_path_factory.mktemp(f"bad_{case}")
        cfg = make(config_loader("config"), with_key, folder)
        (folder / "bad.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
        out[case] = (folder, cfg)
    return out


@pytest.fixture(scope="module")
def bad_runs(bad_configs, snakemake) -> dict[str, Any]:
    """``snakemake -n --configfile bad.yaml`` for every case (3 at a time: each is ~3 s)."""

    def one(case: str):
        folder, _ = bad_configs[case]
        return snakemake(["-n", "--configfile", str(folder / "bad.yaml")], folder / "wd")

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(BAD, pool.map(one, BAD), strict=True))


@pytest.mark.parametrize("case", list(BAD))
def test_validate_rejects_bad_config(bad_configs, case):
    _, cfg = bad_configs[case]
    with pytest.raises(P.PipelineConfigError) as err:
        P.validate(cfg)
    message = str(err.value)
    absent = _absent(BAD[case][1], message)
    assert not absent, f"the message lacks {absent}:\n{message}"


@pytest.mark.parametrize("case", list(BAD))
def test_snakemake_rejects_bad_config_before_any_job(bad_runs, case):
    run = bad_runs[case]
    assert run.returncode != 0, run.describe()
    assert "config error" in run.output, run.describe()
    absent = _absent(BAD[case][1], run.output)
    assert not absent, f"snakemake's output lacks {absent}:\n{run.describe()}"
    assert "Job stats" not in run.output, run.describe()
    made = sorted(p.name for p in run.workdir.iterdir()) if run.workdir.exists() else []
    assert set(made) <= {".snakemake"}, f"files were created before the config was rejected: {made}"


def test_missing_local_path_is_only_a_path_check(bad_configs):
    _, cfg = bad_configs["missing_local_path"]
    P.validate(
        cfg, check_paths=False
    )  # schema and dataclasses accept it: only the folder is missing


def test_annotations_folder_must_exist(configs, with_key, tmp_path):
    ds = {"source": "local", "local_path": str(tmp_path), "annotations": str(tmp_path / "nope")}
    cfg = with_key(configs["config"], "datasets.ucf101", ds)
    cfg = with_key(cfg, "finetune.datasets", ["synthetic", "ucf101"])
    with pytest.raises(P.PipelineConfigError, match=r"datasets\.ucf101\.annotations = .*nope"):
        P.validate(cfg)
    (tmp_path / "nope").mkdir()
    P.validate(cfg)


def test_kinetics_train_csv_from_annotations_or_urls(configs, with_key, tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "train.csv").write_text("label,youtube_id,time_start,time_end,split\n")
    cfg = with_key(configs["config"], "pretrain.dataset", "kinetics400")
    local = {"source": "local", "local_path": str(tmp_path), "annotations": str(tmp_path / "notes")}
    P.validate(with_key(cfg, "datasets.kinetics400", local))
    shards = {"source": "download", "urls": ["https://example.invalid/k400/part_0.tar.gz"]}
    with pytest.raises(P.PipelineConfigError, match=r"has no train\.csv"):
        P.validate(with_key(cfg, "datasets.kinetics400", shards))
    shards["urls"].append("https://example.invalid/k400/train.csv")
    P.validate(with_key(cfg, "datasets.kinetics400", shards))
