# The paper's tables and figures from this config's runs, and results/report.md.


rule report:
    input:
        evaluations=expand(
            "runs/finetune/{exp}/{dataset}/metrics.json",
            exp=EXPERIMENTS,
            dataset=FT_DATASETS,
        ),
        per_class=expand(
            "runs/finetune/{exp}/{dataset}/per_class.csv",
            exp=EXPERIMENTS,
            dataset=FT_DATASETS,
        ),
        retrievals=expand(
            "runs/retrieval/{exp}/{dataset}/metrics.json",
            exp=EXPERIMENTS,
            dataset=RT_DATASETS,
        ),
        analyses=expand(
            "runs/analysis/{exp}/{dataset}/similarity.json",
            exp=EXPERIMENTS,
            dataset=AN_DATASET,
        ),
        manifests=expand("data/{dataset}/manifest.csv", dataset=P.used_datasets(config)),
    output:
        [in_report(path) for path in P.REPORT_OUTPUTS],
    log:
        "logs/report.log",
    conda:
        "../envs/sstl.yaml"
    threads: 1
    resources:
        **res("report"),
    params:
        spec=lambda wc: P.cli_json(P.report_spec(config)),
    shell:
        "sstl report --spec {params.spec} --runs runs --out results"
        " --inputs {input.evaluations:q} {input.per_class:q} {input.retrievals:q}"
        " {input.analyses:q} --manifests {input.manifests:q} > {log:q} 2>&1"
