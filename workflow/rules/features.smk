rule features:
    """Language embedding per mask and text embeddings of the vocabulary (open_clip, or the oracle)."""
    input:
        unpack(stage_inputs("features")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/features/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("features", w),
        upstream=stage_upstream("features"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/features/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/features/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("features", "threads")
    resources:
        mem_mb=res("features", "mem_mb"),
        runtime=res("features", "runtime"),
        gpu=res("features", "gpu"),
    shell:
        "python -m stages.features {params.inputs} --out {output.store} --weights-dir {params.weights:q} "
        "--params {params.json:q} &> {log}"
