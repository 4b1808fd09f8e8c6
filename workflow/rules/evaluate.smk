rule evaluate_render:
    """PSNR / SSIM of a trained Gaussian model on the scene's held-out views."""
    input:
        scene=f"{RESULTS}/{{dataset}}/{{scene}}/scene.zarr",
        gaussians=f"{RESULTS}/{{dataset}}/{{scene}}/train_gs/{{variant}}.zarr",
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_render/{{variant}}.zarr"),
        table=f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_render/{{variant}}.csv",
        preview=report(f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_render/{{variant}}.png",
                       caption="../report/render_preview.rst", category="Novel views"),
    params:
        upstream=lambda w: upstream_params(w.dataset, w.scene, ("train_gs", w.variant)),
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/evaluate_render/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/evaluate_render/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("evaluate_render", "threads")
    resources:
        mem_mb=res("evaluate_render", "mem_mb"),
        runtime=res("evaluate_render", "runtime"),
        gpu=res("evaluate_render", "gpu"),
    shell:
        "python -m stages.evaluate_render --scene {input.scene} --gaussians {input.gaussians} "
        "--variant {wildcards.variant} --out {output.store} --table {output.table} --preview {output.preview} &> {log}"
