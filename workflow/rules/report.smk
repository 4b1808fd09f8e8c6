rule report:
    """Aggregate all scenes and methods into Markdown, CSV and plots."""
    input:
        render_tables=render_tables,
        semantic_tables=semantic_tables,
        prompt_tables=prompt_tables,
        capability_stores=capability_stores,
        instance_tables=instance_tables,
        annotation_tables=annotation_tables,
    output:
        md=report(f"{RESULTS}/report/report.md", caption="../report/report_md.rst", category="Report"),
        render_csv=f"{RESULTS}/report/render_metrics.csv",
        render_plot=report(f"{RESULTS}/report/render_psnr.png", caption="../report/render_psnr.rst", category="Report"),
    params:
        semantic=semantic_table_args(),
        notes=prior_notes(),
        prompt=prompt_table_args(),
        capability=capability_store_args(),
        fusion_methods=" ".join(capability_methods()),
        instances=instance_table_args(),
        annotations=annotation_table_args(),
        random_weights=" ".join(random_weight_methods()),
        out_dir=lambda w, output: os.path.dirname(output.md),
        upstream=lambda w: [upstream_params(d, s, ("train_gs", v)) for (d, s) in SCENES for v in method_variants("train_gs")]
        + [upstream_params(d, s, ("evaluate_semantic", v)) for (d, s) in SCENES for _, v in semantic_methods()]
        + [upstream_params(d, s, ("evaluate_prompt", v)) for (d, s) in SCENES for _, v in prompt_methods()]
        + [upstream_params(d, s, ("evaluate_instances", v)) for (d, s) in SCENES for _, v in instance_methods()]
        + [upstream_params(d, s, ("evaluate_annotations", v)) for (d, s) in annotation_scenes()
           for _, v in annotation_methods()],
    log:
        f"{RESULTS}/logs/report.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=res("report", "gpu"),
    shell:
        "python -m stages.report --render-tables {input.render_tables} --semantic-tables {params.semantic} "
        "--capability-stores {params.capability} --fusion-methods {params.fusion_methods} "
        "--semantic-notes {params.notes} --prompt-tables {params.prompt} "
        "--instance-tables {params.instances} --annotation-tables {params.annotations} "
        "--random-weight-methods {params.random_weights} --out-dir {params.out_dir:q} &> {log}"
