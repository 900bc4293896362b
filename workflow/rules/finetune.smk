# Fine-tuning per (experiment, dataset) from the pretrained conv weights (or scratch), then the
# 5-clip video-level evaluation.


rule finetune:
    input:
        manifest="data/{dataset}/manifest.csv",
        store=dataset_store,
        weights=pretrained_weights,
    output:
        weights="runs/finetune/{exp}/{dataset}/weights.pt",
        # training curves from the whole run's logs (state/ keeps the logs across resumes)
        curves="runs/finetune/{exp}/{dataset}/curves.csv",
        epoch_curves="runs/finetune/{exp}/{dataset}/epochs.csv",
        validation_curves="runs/finetune/{exp}/{dataset}/validation.csv",
        curves_plot=report(
            "runs/finetune/{exp}/{dataset}/curves.png",
            caption="../report/finetune_curves.rst",
            category="Training curves",
            subcategory="fine-tuning",
            labels={"experiment": "{exp}", "dataset": "{dataset}"},
        ),
    log:
        "logs/finetune/{exp}/{dataset}.log",
    benchmark:
        "benchmarks/finetune/{exp}/{dataset}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("finetune")
    resources:
        **res("finetune"),
    params:
        cfg=cfg_arg("finetune"),
        init=init_arg,
        state="state/finetune/{exp}/{dataset}",
        curves="runs/finetune/{exp}/{dataset}",  # the folder of the curves outputs
    shell:
        "sstl finetune --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store data/{wildcards.dataset:q}/store --init {params.init:q}"
        " --out {output.weights:q} --state-dir {params.state:q}"
        " --metrics {params.state:q}/metrics.jsonl --tensorboard {params.state:q}/tb"
        " --curves {params.curves:q} > {log:q} 2>&1"


rule evaluate:
    input:
        manifest="data/{dataset}/manifest.csv",
        store=dataset_store,
        weights="runs/finetune/{exp}/{dataset}/weights.pt",
    output:
        metrics="runs/finetune/{exp}/{dataset}/metrics.json",
        per_class="runs/finetune/{exp}/{dataset}/per_class.csv",
        confusion="runs/finetune/{exp}/{dataset}/confusion.csv",
    log:
        "logs/evaluate/{exp}/{dataset}.log",
    benchmark:
        "benchmarks/evaluate/{exp}/{dataset}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("evaluate")
    resources:
        **res("evaluate"),
    params:
        cfg=cfg_arg("evaluate"),
    shell:
        "sstl evaluate --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store data/{wildcards.dataset:q}/store --weights {input.weights:q}"
        " --out {output.metrics:q} --per-class {output.per_class:q}"
        " --confusion {output.confusion:q} > {log:q} 2>&1"
