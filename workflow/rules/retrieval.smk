# Nearest-neighbour clip retrieval with the pretrained (not fine-tuned) model, and the feature
# similarity analysis behind Figures 1 and 2.


rule retrieve:
    input:
        manifest="data/{dataset}/manifest.csv",
        store=dataset_store,
        weights=pretrained_weights,
    output:
        metrics="runs/retrieval/{exp}/{dataset}/metrics.json",
    log:
        "logs/retrieve/{exp}/{dataset}.log",
    benchmark:
        "benchmarks/retrieve/{exp}/{dataset}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("retrieve")
    resources:
        **res("retrieve"),
    params:
        cfg=cfg_arg("retrieve"),
        init=init_arg,
    shell:
        "sstl retrieve --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store data/{wildcards.dataset:q}/store --weights {params.init:q}"
        " --out {output.metrics:q} > {log:q} 2>&1"


rule analyse:
    input:
        manifest="data/{dataset}/manifest.csv",
        store=dataset_store,
        weights=pretrained_weights,
    output:
        similarity="runs/analysis/{exp}/{dataset}/similarity.json",
    log:
        "logs/analyse/{exp}/{dataset}.log",
    conda:
        "../envs/sstl.yaml"
    threads: threads("analyse")
    resources:
        **res("analyse"),
    params:
        cfg=cfg_arg("analyse"),
        init=init_arg,
    shell:
        "sstl analyse --cfg {params.cfg} --manifest {input.manifest:q}"
        " --store data/{wildcards.dataset:q}/store --weights {params.init:q}"
        " --experiment {wildcards.exp:q} --dataset {wildcards.dataset:q}"
        " --out {output.similarity:q} > {log:q} 2>&1"
