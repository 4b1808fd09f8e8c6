rule train_features:
    """Per-Gaussian feature field trained on the masks (the method's objective)."""
    input:
        unpack(stage_inputs("train_features")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/train_features/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("train_features", w),
        upstream=stage_upstream("train_features"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/train_features/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/train_features/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("train_features", "threads")
    resources:
        mem_mb=res("train_features", "mem_mb"),
        runtime=res("train_features", "runtime"),
        gpu=res("train_features", "gpu"),
    shell:
        "python -m stages.train_features {params.inputs} --out {output.store} "
        "--params {params.json:q} &> {log}"
