# The paper's tables and figures from this config's runs, and results/report.md.


def in_report(path):
    """``path`` marked for `snakemake --report` when it is a figure or a table's CSV (captions
    in workflow/report/), else as it is."""
    # results/figures/figure1.png -> figure1
    stem = path.rsplit("/", 1)[-1].split(".")[0]
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
        " --manifests {input.manifests:q} > {log:q} 2>&1"
