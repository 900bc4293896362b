"""sstl.pipeline: how the config becomes each rule's ``--cfg`` JSON, resources and report spec."""

from __future__ import annotations

import copy
import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from sstl import config as C
from sstl import pipeline as P

REPO = Path(__file__).resolve().parents[2]


# --- deep_merge ----------------------------------------------------------------------------------


def test_deep_merge_merges_mappings_and_replaces_the_rest():
    base = {"a": {"x": 1, "y": {"p": 1, "q": 2}}, "b": [1, 2], "c": 3}
    over = {"a": {"y": {"q": 20}, "z": 5}, "b": [9], "c": {"new": 1}}
    assert P.deep_merge(base, over) == {
        "a": {"x": 1, "y": {"p": 1, "q": 20}, "z": 5},
        "b": [9],  # lists replace, never concatenate
        "c": {"new": 1},
    }


def test_deep_merge_copies_and_accepts_none():
    base = {"a": {"x": [1]}}
    over = {"b": {"y": [2]}}
    merged = P.deep_merge(base, over)
    merged["a"]["x"].append(99)
    merged["b"]["y"].append(99)
    assert base == {"a": {"x": [1]}} and over == {"b": {"y": [2]}}  # inputs untouched
    assert P.deep_merge(base, None) == base and P.deep_merge(base, None) is not base
    assert P.deep_merge({"a": {"x": 1}}, {"a": None}) == {"a": None}  # explicit null replaces


# --- experiments ------------------------------------------------------------------------------


def test_is_scratch(configs):
    cfg = configs["config"]
    assert P.is_scratch(cfg, "scratch")
    assert not P.is_scratch(cfg, "sstl") and not P.is_scratch(cfg, "sstl_no_temp")
    bare = {**cfg, "experiments": {"plain": None}}  # `plain:` with no body: pretrained
    assert not P.is_scratch(bare, "plain")
    with pytest.raises(P.PipelineConfigError, match="'nosuch' is not defined; defined: scratch"):
        P.is_scratch(cfg, "nosuch")


def test_run_experiments_in_config_order(configs):
    assert P.run_experiments(configs["config"]) == [
        *(f"sstl_seed{s}" for s in range(3)),
        *(f"sstl_no_temp_seed{s}" for s in range(3)),
        "scratch",
        "supervised",
    ]
    assert len(P.run_experiments(configs["paper"])) == 21


def test_a_replica_is_its_experiment_with_its_own_seed(configs):
    cfg = configs["config"]
    for stage, where in (("pretrain", ("run", "seed")), ("finetune", ("run", "seed")),
                         ("retrieve", ("seed",)), ("analyse", ("seed",))):  # fmt: skip
        for s in (0, 1, 2):
            job = P.stage_config(cfg, stage, f"sstl_no_temp_seed{s}")
            node = job
            for key in where:
                node = node[key]
            assert node == s, (stage, s)
    one = P.stage_config(cfg, "pretrain", "sstl_no_temp_seed1")
    assert one["temporal"]["buffer"] == 0  # the experiment's overrides hold for each replica
    assert P.base_of(cfg, "sstl_no_temp_seed1") == "sstl_no_temp"
    for name in ("sstl_seed3", "scratch_seed0"):  # not one of its seeds; an experiment without
        with pytest.raises(P.PipelineConfigError, match=f"'{name}' is not defined"):
            P.experiment(cfg, name)
    spec = P.report_spec(cfg)
    assert spec["replicas"]["sstl"] == ["sstl_seed0", "sstl_seed1", "sstl_seed2"]
    assert spec["run"] == ["sstl", "sstl_no_temp", "scratch", "supervised"]


def test_a_replica_named_like_an_experiment_is_refused(configs, with_key):
    cfg = with_key(configs["config"], "experiments.sstl_seed1", {"description": "clash"})
    with pytest.raises(P.PipelineConfigError, match="'sstl_seed1' is named twice"):
        P.validate(cfg, check_paths=False)


def test_dvc_params_of_a_replica_are_its_experiments(configs):
    keys = P.param_keys(configs["config"], "pretrain", {"exp": "sstl_no_temp_seed2"})
    assert "experiments.sstl_no_temp.pretrain.temporal.buffer" in keys
    assert "experiments.sstl_no_temp.seeds" in keys


def test_the_supervised_reference_trains_with_labels_on_the_pretraining_set(configs):
    for name in ("config", "paper"):
        cfg = configs[name]
        assert P.init_of(cfg, "supervised") == "supervised"
        assert P.weights_of(cfg, "supervised") == "runs/supervised/supervised/weights.pt"
        job = P.stage_config(cfg, "supervise", "supervised")
        assert job["model"] == P.stage_config(cfg, "pretrain", "supervised")["model"]
        assert "datasets" not in job and job["optim"] == cfg["finetune"]["optim"]
        assert P.stage_config(cfg, "analyse", "supervised")["analysis"]["layer"] == "backbone"
        assert cfg["report"]["figure1"]["supervised"] == "supervised"
    cfg = configs["config"]
    assert P.weights_of(cfg, "scratch") == "scratch"
    assert P.weights_of(cfg, "sstl_seed1") == "runs/pretrain/sstl_seed1/weights.pt"
    targets = P.curve_targets(cfg)
    assert "runs/supervised/supervised/validation.csv" in targets
    assert not [t for t in targets if t.startswith("runs/pretrain/supervised/")]


# --- stage_config -----------------------------------------------------------------------------


def test_pretrain_stage_applies_the_experiment_override(configs):
    cfg = configs["config"]
    base = P.stage_config(cfg, "pretrain", "sstl")
    notemp = P.stage_config(cfg, "pretrain", "sstl_no_temp")
    assert base["temporal"] == cfg["pretrain"]["temporal"]
    assert notemp["temporal"] == {
        **cfg["pretrain"]["temporal"],
        "buffer": 0,
        "n_drop": 0,
        "speed_distortion": False,
    }
    assert {k: v for k, v in notemp.items() if k != "temporal"} == {
        k: v for k, v in base.items() if k != "temporal"
    }
    assert P.stage_config(cfg, "pretrain") == base  # no override: the section itself
    assert cfg["pretrain"]["temporal"]["buffer"] == 12  # the loaded config is not modified


def test_paper_overrides_reach_each_stage(configs):
    cfg = configs["paper"]
    f4 = P.stage_config(cfg, "pretrain", "f4_b512_d1024")
    assert f4["optim"]["batch_size"] == 512 and f4["model"]["proj_dim"] == 1024
    assert f4["optim"]["epochs"] == 300 and f4["model"]["arch"] == "r3d_18"  # rest inherited
    # retrieval and analysis embed the experiment's pretraining model
    assert P.stage_config(cfg, "retrieve", "f4_b512_d1024")["model"]["proj_dim"] == 1024
    t4 = P.stage_config(cfg, "analyse", "t4_r3")
    assert t4["rate_range"] == [1.0, 1.25] and t4["model"]["speed_head"] is False


@pytest.mark.parametrize("name", ["config", "tiny", "paper"])
def test_stage_config_does_not_modify_the_config(configs, name):
    cfg = configs[name]
    before = copy.deepcopy(cfg)
    for stage in ("synthetic", "extract", "evaluate", "pretrain", "finetune"):
        if stage in cfg:
            P.stage_config(cfg, stage)  # no experiment: the sections themselves
    for exp in P.run_experiments(cfg):
        for stage in ("pretrain", "finetune", "retrieve", "analyse"):
            P.stage_config(cfg, stage, exp)
    assert cfg == before, "stage_config changed the config it was given (it must copy)"


def test_seed_propagates_unless_set(configs, with_key):
    cfg = with_key(configs["config"], "seed", 7)
    assert P.stage_config(cfg, "pretrain", "sstl")["run"]["seed"] == 7
    assert P.stage_config(cfg, "finetune", "sstl")["run"]["seed"] == 7
    assert P.stage_config(cfg, "retrieve", "sstl")["seed"] == 7
    assert P.stage_config(cfg, "analyse", "sstl")["seed"] == 7
    own = with_key(cfg, "experiments.sstl.pretrain", {"run": {"seed": 3}})
    assert P.stage_config(own, "pretrain", "sstl")["run"]["seed"] == 3
    assert P.stage_config(own, "pretrain", "sstl_no_temp")["run"]["seed"] == 7


def test_dataset_lists_are_stripped(configs):
    cfg = configs["config"]
    assert "datasets" not in P.stage_config(cfg, "finetune", "sstl")
    assert "datasets" not in P.stage_config(cfg, "retrieve", "sstl")["retrieval"]
    assert "dataset" not in P.stage_config(cfg, "analyse", "sstl")["analysis"]
    assert cfg["finetune"]["datasets"] == ["synthetic"]  # stripped from a copy only


def test_finetune_inherits_the_pretraining_model(configs, with_key):
    cfg = configs["config"]
    assert P.stage_config(cfg, "finetune", "sstl")["model"] == cfg["pretrain"]["model"]
    own = with_key(cfg, "finetune.model", {"arch": "r3d_18"})
    assert P.stage_config(own, "finetune", "sstl")["model"] == {"arch": "r3d_18"}


@pytest.mark.parametrize("name", ["config", "tiny", "paper"])
def test_every_stage_config_loads_into_its_dataclass(configs, name):
    """What a rule passes to ``sstl <stage> --cfg`` is accepted by the dataclasses it builds."""
    cfg = configs[name]
    C.load_section(C.SyntheticConfig, cfg.get("synthetic"), "synthetic")
    C.load_section(C.StoreConfig, P.stage_config(cfg, "extract")["store"], "store")
    C.load_section(C.EvalConfig, P.stage_config(cfg, "evaluate"), "evaluate")
    for exp in P.run_experiments(cfg):
        if not P.is_scratch(cfg, exp):
            C.load_section(C.PretrainConfig, P.stage_config(cfg, "pretrain", exp), "pretrain")
        C.load_section(C.FinetuneConfig, P.stage_config(cfg, "finetune", exp), "finetune")
        C.load_section(C.RetrieveJob, P.stage_config(cfg, "retrieve", exp))
        C.load_section(C.AnalyseJob, P.stage_config(cfg, "analyse", exp))


def test_unknown_stage():
    with pytest.raises(KeyError):
        P.stage_config({"seed": 0}, "nosuch")


# --- datasets -----------------------------------------------------------------------------------


def test_used_datasets(configs):
    assert P.used_datasets(configs["config"]) == ["synthetic"]
    assert P.used_datasets(configs["paper"]) == ["kinetics400", "ucf101", "hmdb51"]
    cfg = {
        "pretrain": {"dataset": "k400"},
        "finetune": {"datasets": ["ucf101", "hmdb51"]},
        "retrieval": {"datasets": ["ucf101", "k400"]},
        "analysis": {"dataset": "hmdb51"},
    }
    assert P.used_datasets(cfg) == ["k400", "ucf101", "hmdb51"]  # first use order, no repeats


def test_dataset_config(configs):
    ds = P.dataset_config(configs["paper"], "ucf101")
    assert isinstance(ds, C.DatasetConfig) and ds.source == "download" and ds.split == 1
    with pytest.raises(P.PipelineConfigError, match="'kinetics' is used but not defined"):
        P.dataset_config(configs["paper"], "kinetics")


# --- resources and launcher -----------------------------------------------------------------


def test_resources_merge_default_and_rule(configs):
    cfg = configs["config"]
    default = cfg["resources"]["default"]
    assert P.resources(cfg, "pretrain") == {
        **default,
        "cpus": 1,
        "mem_mb": 4000,
        "runtime": 60,
        "gpus": 1,
        "warn_seconds": 120,
    }
    assert P.resources(cfg, "report") == default  # no override
    paper = P.resources(configs["paper"], "pretrain")
    assert (paper["gpus"], paper["tasks"], paper["nodes"], paper["warn_seconds"]) == (
        32,
        32,
        4,
        300,
    )
    assert P.resources({}, "pretrain") == {}
    assert cfg["resources"]["default"] == default  # not modified


def test_launcher():
    assert P.launcher(1) == "" and P.launcher(0) == ""
    script, tasks = P.launcher(4, REPO).split()
    assert Path(script) == REPO / "workflow" / "scripts" / "launch.sh" and tasks == "4"
    assert os.access(script, os.X_OK), f"{script} is not executable"
    assert P.launcher(2).split()[0] == "workflow/scripts/launch.sh"  # relative to the workdir


@pytest.mark.parametrize(
    "checkout", ["/work/my project", "/tmp/$(touch PWNED)", "/x/it's `id`;y", "/a/b\nc", "/x/-rf *"]
)
def test_launcher_quotes_a_hostile_checkout_path(checkout, tmp_path):
    prefix = P.launcher(2, checkout)
    assert shlex.split(prefix) == [f"{checkout}/workflow/scripts/launch.sh", "2"]
    # through a real shell: the words arrive intact and nothing runs
    out = subprocess.run(
        ["bash", "-c", f"printf '%s\\0' {prefix}"], cwd=tmp_path, capture_output=True, text=True
    )
    assert out.stdout.split("\0")[:-1] == [f"{checkout}/workflow/scripts/launch.sh", "2"]
    assert list(tmp_path.iterdir()) == []


def test_name_patterns_come_from_the_schema():
    assert P.name_pattern("exp_name") == "[A-Za-z0-9_]+"
    assert P.name_pattern("dataset_name") == "[a-z0-9]+"


# --- cli_json -----------------------------------------------------------------------------------


def test_cli_json_round_trips_through_the_shell():
    data = {
        "b": [1, 2.5, None, True],
        "a": {"text": 'it\'s "quoted" $HOME `x` ; rm -rf /', "unicode": "schön"},
    }
    arg = P.cli_json(data)
    (word,) = shlex.split(arg)  # one shell word
    assert json.loads(word) == data
    # a real shell hands the program the same JSON: nothing expanded, nothing split
    out = subprocess.run(
        ["bash", "-c", f"printf %s {arg}"], capture_output=True, text=True, check=True, timeout=10
    ).stdout
    assert json.loads(out) == data


def test_cli_json_is_stable_and_compact():
    one = P.cli_json({"x": 1, "y": {"b": 2, "a": 1}})
    two = P.cli_json({"y": {"a": 1, "b": 2}, "x": 1})
    assert one == two  # key order does not change the rule's params
    assert " " not in shlex.split(one)[0]


# --- report spec ------------------------------------------------------------------------------


def test_report_spec(configs, with_key):
    cfg = configs["config"]
    spec = P.report_spec(cfg)
    for key, value in cfg["report"].items():
        assert spec[key] == value
    assert spec["run"] == ["sstl", "sstl_no_temp", "scratch", "supervised"]
    assert spec["experiments"]["scratch"] == cfg["experiments"]["scratch"]["description"]
    assert set(spec["experiments"]) == set(cfg["experiments"])
    assert len(spec["config_hash"]) == 16
    assert P.report_spec(configs["config"])["config_hash"] == spec["config_hash"]
    changed = with_key(cfg, "pretrain.optim.epochs", 26)
    assert P.report_spec(changed)["config_hash"] != spec["config_hash"]
    bare = with_key(cfg, "experiments", {"plain": None})
    assert P.report_spec(bare)["experiments"] == {"plain": ""}
    json.loads(shlex.split(P.cli_json(spec))[0])  # goes through --spec


def test_final_targets_are_the_report_outputs_and_the_training_curves(configs, repo_dir):
    targets = P.final_targets(configs["config"])
    assert targets[: len(P.REPORT_OUTPUTS)] == P.REPORT_OUTPUTS
    assert len([t for t in targets if t.startswith("results/tables/")]) == 15  # 5 tables x 3
    assert {"results/report.md", "results/summary.json"} <= set(targets)
    # every curve file a training job declares (dvc.yaml is generated from the jobs), no other
    stages = yaml.safe_load((repo_dir / "dvc.yaml").read_text())["stages"]
    curves = {
        out
        for name, stage in stages.items()
        if name.startswith(("pretrain-", "supervise-", "finetune-"))
        for out in stage["outs"]
        if Path(out).name in {n for names in P.CURVE_FILES.values() for n in names}
    }
    assert sorted(targets[len(P.REPORT_OUTPUTS) :]) == sorted(curves)
    assert "runs/finetune/scratch/synthetic/validation.csv" in curves


def test_no_pretraining_is_run_twice(configs):
    """Two experiments whose pretrainings train the same backbone (a speed head without a loss
    changes nothing) would pay the same GPU-hours twice."""
    for cfg in configs.values():
        seen = {}
        for exp in P.run_experiments(cfg):
            if P.init_of(cfg, exp) != "pretrained":
                continue
            job = P.stage_config(cfg, "pretrain", exp)
            if not job["temporal"]["speed_distortion"]:
                job["model"] = {**job["model"], "speed_head": None}
            key = P.cli_json(job)
            assert key not in seen, f"{exp} repeats the pretraining of {seen.get(key)}"
            seen[key] = exp


def test_the_ablations_config_runs_every_row_and_cell_with_three_seeds(configs, repo_dir):
    from snakemake.utils import update_config

    from sstl.report.paper import load_paper

    cfg = configs["config"]  # what Snakemake merges config/ablations.yaml over
    update_config(cfg, yaml.safe_load((repo_dir / "config/ablations.yaml").read_text()))
    P.validate(cfg, check_paths=False)
    paper, report = load_paper(), cfg["report"]
    for table in ("table4", "table5"):
        assert set(report[table]) == set(paper[table]["reproducible"]), table
    cells = report["figure4"]["experiments"].values()
    assert len({(c["batch"], c["dim"]) for c in cells}) == 9
    used = {*report["table4"].values(), *report["table5"].values(), *(c["exp"] for c in cells)}
    assert used <= set(cfg["run"])
    for exp in used:
        assert len(P.replicas(cfg, exp)) >= 3, exp
    assert len(P.run_experiments(cfg)) == 3 * len(used) == 57
    # the scaled grid: batch a quarter / half / all of the demo's, lr linear in the batch
    jobs = [P.stage_config(cfg, "pretrain", f"{c['exp']}_seed0") for c in cells]
    assert {j["optim"]["batch_size"] for j in jobs} == {8, 16, 32}
    assert {j["optim"]["ref_batch"] for j in jobs} == {cfg["pretrain"]["optim"]["ref_batch"]}


def test_the_schema_allows_exactly_the_inits_the_pipeline_knows():
    schema = yaml.safe_load(P.SCHEMA.read_text())
    init = schema["properties"]["experiments"]["additionalProperties"]["properties"]["init"]
    assert tuple(init["enum"]) == P.INITS == ("pretrained", "scratch", "supervised")
