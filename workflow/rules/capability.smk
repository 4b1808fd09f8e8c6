rule capability:
    """Per-model, per-class capability of the 2D models (SAS Eq. 3-5) from synthesised single-object images."""
    input:
        unpack(stage_inputs("capability")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/capability/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("capability", w),
        upstream=stage_upstream("capability"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/capability/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/capability/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("capability", "threads")
    resources:
        mem_mb=res("capability", "mem_mb"),
        runtime=res("capability", "runtime"),
        gpu=res("capability", "gpu"),
    shell:
        "python -m stages.capability {params.inputs} --out {output.store} --weights-dir {params.weights:q} "
        "--params {params.json:q} &> {log}"
