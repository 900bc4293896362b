# sstl: Self-supervised Temporal Learning, end to end.
# Stages: data (synthetic | download, sharded frame-store extraction, manifest) -> pretrain ->
# finetune + evaluate -> retrieval -> analysis -> report. See README.md and docs/.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config/config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/pretrain.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/retrieval.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        final_outputs(),
