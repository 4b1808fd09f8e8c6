def render_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_render/{v}.csv" for (d, s) in SCENES for v in method_variants("train_gs")]


rule report:
    """Aggregate all scenes and methods into Markdown, CSV and plots."""
    input:
        render_tables=render_tables,
    output:
        md=report(f"{RESULTS}/report/report.md", caption="../report/report_md.rst", category="Report"),
        render_csv=f"{RESULTS}/report/render_metrics.csv",
        render_plot=report(f"{RESULTS}/report/render_psnr.png", caption="../report/render_psnr.rst", category="Report"),
    params:
        upstream=lambda w: [upstream_params(d, s, ("train_gs", v)) for (d, s) in SCENES for v in method_variants("train_gs")],
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
        "python -m stages.report --render-tables {input.render_tables} --out-dir {RESULTS}/report &> {log}"
