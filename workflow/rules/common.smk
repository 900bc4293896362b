# Schema validation, wildcard constraints, input functions and the report marks; the logic lives
# in sstl.pipeline.
import sys
from pathlib import Path

sys.path.insert(
    0, workflow.basedir
)  # import the package from this checkout, installed or not

from sstl import pipeline as P
from sstl import slurm_job

slurm_job.ignore_warning_signal()  # in a Slurm job: the warning is for the trainer (see res())

try:
    P.validate(config)
except (P.PipelineConfigError, ValueError) as err:
    raise WorkflowError(f"config error: {err}") from None

EXPERIMENTS = P.run_experiments(
    config
)  # runs: experiments, each replica (seeds) its own
FT_DATASETS = config["finetune"]["datasets"]
RT_DATASETS = config["retrieval"]["datasets"]
AN_DATASET = config["analysis"]["dataset"]
SHARDS = [
    f"{i}-of-{config['extract']['shards']}" for i in range(config["extract"]["shards"])
]


wildcard_constraints:
    exp=P.name_pattern("exp_name"),
    dataset=P.name_pattern("dataset_name"),
    shard=r"\d+-of-\d+",


def res(rule):
    """Job sizes of a rule in the names the local scheduler and the Slurm plugin read.

    Partition, account, QOS and GPU type come from the Slurm profile or the command line.
    """
    r = P.resources(config, rule)
    out = {
        "mem_mb": r["mem_mb"],
        "runtime": r["runtime"],
        "cpus_per_task": r["cpus"],
        "tasks": r.get("tasks", 1),
        "nodes": r.get("nodes", 1),
    }
    if r.get("warn_seconds", 0) > 0:
        # every process of the job step gets it; slurm_job.ignore_warning_signal() above keeps the
        # inner Snakemake and the shell alive, so the trainer saves and exits 75
        out["slurm_extra"] = f"--signal=USR1@{r['warn_seconds']}"
    if r.get("gpus", 0) > 0:
        out["gpu"] = r["gpus"]
    if r.get("tasks", 1) > 1:
        # one process per task started by srun inside the job (sstl.pipeline.launcher)
        out["mpi"] = "srun"
        if r.get("gpus", 0) > 0:
            out["tasks_per_gpu"] = 1
    return out


def threads(rule):
    return P.resources(config, rule)["cpus"]


# Shell strings quote every value with `:q`, except `params.cfg` / `params.spec` (already quoted
# by P.cli_json) and `params.launch` (a command prefix, quoted by P.launcher).


def cfg_arg(stage, exp=None):
    """Params function: the stage's resolved config as shell-quoted JSON."""
    return lambda wc: P.cli_json(P.stage_config(config, stage, wc.get("exp", exp)))


def source_of(wc):
    if wc.dataset == "synthetic":
        return "data/synthetic/source/synthetic.json"
    return f"data/{wc.dataset}/source/source.json"


def located_of(wc):
    """Where fetch found each listed video (extraction reads it); the synthetic set has none."""
    if wc.dataset == "synthetic":
        return []
    return f"data/{wc.dataset}/source/located.csv"


def pretrain_dataset(wc):
    return P.stage_config(config, "pretrain", wc.exp)["dataset"]


def store_of(dataset):
    """The frame store of a dataset: one folder per extraction shard (declared inputs)."""
    return expand("data/{dataset}/store/{shard}", dataset=dataset, shard=SHARDS)


def dataset_store(wc):
    return store_of(wc.dataset)


def pretrain_store(wc):
    return store_of(pretrain_dataset(wc))


def pretrained_weights(wc):
    """The run's starting weights (SSTL or supervised); none for scratch."""
    if P.is_scratch(config, wc.exp):
        return []
    return P.weights_of(config, wc.exp)


def init_arg(wc):
    return P.weights_of(config, wc.exp)


def final_outputs():
    return P.final_targets(config)


def in_report(path):
    """``path`` marked for `snakemake --report` when it is a figure or a table's CSV (captions
    in workflow/report/), else as it is."""
    stem = Path(path).stem  # results/figures/figure1.png -> figure1
    if path.startswith("results/figures/"):
        label = {"figure": stem.replace("figure", "Figure ")}
        return report(
            path, caption=f"../report/{stem}.rst", category="Figures", labels=label
        )
    if path.startswith("results/tables/") and path.endswith(".csv"):
        label = {"table": stem.replace("table", "Table ")}
        return report(
            path, caption=f"../report/{stem}.rst", category="Tables", labels=label
        )
    return path
