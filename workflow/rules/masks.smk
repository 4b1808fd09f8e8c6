rule masks:
    """2D masks per view at the levels a method needs (SAM, or the ground-truth oracle)."""
    input:
        unpack(stage_inputs("masks")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/masks/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("masks", w),
        upstream=stage_upstream("masks"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/masks/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/masks/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("masks", "threads")
    resources:
        mem_mb=res("masks", "mem_mb"),
        runtime=res("masks", "runtime"),
        gpu=res("masks", "gpu"),
    shell:
        "python -m stages.masks {params.inputs} --out {output.store} --weights-dir {params.weights:q} "
        "--params {params.json:q} &> {log}"
