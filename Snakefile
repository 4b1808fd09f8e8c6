# Open-vocabulary 3D Gaussian segmentation pipeline: the DAG of stages.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/train_gs.smk"
include: "workflow/rules/masks.smk"
include: "workflow/rules/track.smk"
include: "workflow/rules/features.smk"
include: "workflow/rules/mask_scales.smk"
include: "workflow/rules/capability.smk"
include: "workflow/rules/distill.smk"
include: "workflow/rules/train_features.smk"
include: "workflow/rules/codebook.smk"
include: "workflow/rules/pseudo_gt.smk"
include: "workflow/rules/associate.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/evaluate_semantic.smk"
include: "workflow/rules/evaluate_instances.smk"
include: "workflow/rules/evaluate_prompt.smk"
include: "workflow/rules/evaluate_annotations.smk"
include: "workflow/rules/report_inputs.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"


rule all:
    input:
        all_targets(),
