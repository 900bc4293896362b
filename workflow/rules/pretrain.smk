# SSTL pretraining, one job per experiment; multi-GPU runs start one task per GPU with srun.


rule pretrain:
    input:
        manifest=lambda wc: f"data/{pretrain_dataset(wc)}/manifest.csv",
        store=pretrain_store,
    output:
        weights="runs/pretrain/{exp}/weights.pt",
        # training curves from the whole run's logs (state/ keeps the logs across resumes)
        curves="runs/pretrain/{exp}/curves.csv",
        epoch_curves="runs/pretrain/{exp}/epochs.csv",
        curves_plot=report(
            "runs/pretrain/{exp}/curves.png",
            caption="../report/pretrain_curves.rst",
            category="Training curves",
            subcategory="pretraining",
            labels={"experiment": "{exp}"},
        ),
    log:
        "logs/pretrain/{exp}.log",
    benchmark:
        "benchmarks/pretrain/{exp}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("pretrain")
    resources:
        **res("pretrain"),
    params:
        cfg=cfg_arg("pretrain"),
        launch=P.launcher(
            P.resources(config, "pretrain").get("tasks", 1), workflow.basedir
        ),
        store=lambda wc: f"data/{pretrain_dataset(wc)}/store",
        # resume state: NOT an output, so it survives a failed or preempted job
        state="state/pretrain/{exp}",
        curves="runs/pretrain/{exp}",  # the folder of the curves outputs
    shell:
        "{params.launch} sstl pretrain --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store {params.store:q} --out {output.weights:q} --state-dir {params.state:q}"
        " --metrics {params.state:q}/metrics.jsonl --tensorboard {params.state:q}/tb"
        " --curves {params.curves:q} > {log:q} 2>&1"


# The supervised reference (experiments with `init: supervised`): the same backbone trained with
# the labels of the pretraining set, by the fine-tuning loop.
rule supervise:
    input:
        manifest=lambda wc: f"data/{pretrain_dataset(wc)}/manifest.csv",
        store=pretrain_store,
    output:
        weights="runs/supervised/{exp}/weights.pt",
        curves="runs/supervised/{exp}/curves.csv",
        epoch_curves="runs/supervised/{exp}/epochs.csv",
        validation_curves="runs/supervised/{exp}/validation.csv",
        curves_plot=report(
            "runs/supervised/{exp}/curves.png",
            caption="../report/finetune_curves.rst",
            category="Training curves",
            subcategory="supervised",
            labels={"experiment": "{exp}"},
        ),
    log:
        "logs/supervise/{exp}.log",
    benchmark:
        "benchmarks/supervise/{exp}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("finetune")
    resources:
        **res("finetune"),
    params:
        cfg=cfg_arg("supervise"),
        store=lambda wc: f"data/{pretrain_dataset(wc)}/store",
        state="state/supervised/{exp}",
        curves="runs/supervised/{exp}",
    shell:
        "sstl supervise --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store {params.store:q} --out {output.weights:q} --state-dir {params.state:q}"
        " --metrics {params.state:q}/metrics.jsonl --tensorboard {params.state:q}/tb"
        " --curves {params.curves:q} > {log:q} 2>&1"
