# Data: the synthetic dataset or a downloaded / local real one, then the frame store in shards.


rule synthetic:
    output:
        summary="data/synthetic/source/synthetic.json",
    log:
        "logs/synthetic.log",
    conda:
        "../envs/sstl.yaml"
    threads: threads("synthetic")
    resources:
        **res("synthetic"),
    params:
        cfg=cfg_arg("synthetic"),
    shell:
        "sstl synthetic --cfg {params.cfg} --out data/synthetic/source > {log:q} 2>&1"


rule fetch:
    output:
        summary="data/{dataset}/source/source.json",
        located="data/{dataset}/source/located.csv",
    log:
        "logs/fetch/{dataset}.log",
    conda:
        "../envs/sstl.yaml"
    threads: threads("fetch")
    resources:
        **res("fetch"),
    params:
        cfg=lambda wc: P.cli_json(config["datasets"][wc.dataset]),
    shell:
        "sstl fetch --dataset {wildcards.dataset:q} --cfg {params.cfg}"
        " --out data/{wildcards.dataset:q}/source > {log:q} 2>&1"


rule extract:
    input:
        source=source_of,
        located=located_of,
    output:
        store=directory("data/{dataset}/store/{shard}"),
        shard="data/{dataset}/shards/{shard}.csv",
    log:
        "logs/extract/{dataset}/{shard}.log",
    benchmark:
        "benchmarks/extract/{dataset}/{shard}.tsv"
    conda:
        "../envs/sstl.yaml"
    threads: threads("extract")
    resources:
        **res("extract"),
    params:
        cfg=lambda wc: P.cli_json(
            {
                **P.stage_config(config, "extract"),
                "split": P.dataset_config(config, wc.dataset).split,
            }
        ),
        shard=lambda wc: wc.shard.replace("-of-", "/"),
    shell:
        "sstl extract --dataset {wildcards.dataset:q}"
        " --source data/{wildcards.dataset:q}/source"
        " --store {output.store:q} --store-root data/{wildcards.dataset:q}/store"
        " --shard {params.shard:q} --cfg {params.cfg}"
        " --out {output.shard:q} > {log:q} 2>&1"


rule manifest:
    input:
        shards=expand("data/{{dataset}}/shards/{shard}.csv", shard=SHARDS),
    output:
        manifest="data/{dataset}/manifest.csv",
    log:
        "logs/manifest/{dataset}.log",
    conda:
        "../envs/sstl.yaml"
    threads: 1
    resources:
        **res("manifest"),
    shell:
        "sstl manifest --shards {input.shards:q} --out {output.manifest:q} > {log:q} 2>&1"
