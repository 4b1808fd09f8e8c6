rule train_gs:
    """Train RGB Gaussians on the scene's train views; also export the standard 3DGS PLY."""
    input:
        scene=f"{RESULTS}/{{dataset}}/{{scene}}/scene.zarr",
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/train_gs/{{variant}}.zarr"),
        ply=f"{RESULTS}/{{dataset}}/{{scene}}/train_gs/{{variant}}.ply",
    params:
        json=lambda w: stage_params("train_gs", w),
        upstream=stage_upstream("train_gs"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/train_gs/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/train_gs/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("train_gs", "threads")
    resources:
        mem_mb=res("train_gs", "mem_mb"),
        runtime=res("train_gs", "runtime"),
        gpu=res("train_gs", "gpu"),
    shell:
        "python -m stages.train_gs {params.inputs} --out {output.store} --ply {output.ply} "
        "--params {params.json:q} &> {log}"
