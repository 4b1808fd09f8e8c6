rule distill:
    """SAS 3D: a sparse-conv MinkUNet18A distilled from the fused 2D point features (Sec. 3.4-3.5)."""
    input:
        unpack(stage_inputs("distill")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/distill/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("distill", w),
        upstream=stage_upstream("distill"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/distill/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/distill/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("distill", "threads")
    resources:
        mem_mb=res("distill", "mem_mb"),
        runtime=res("distill", "runtime"),
        gpu=res("distill", "gpu"),
    shell:
        "python -m stages.distill {params.inputs} --out {output.store} --weights-dir {params.weights:q} "
        "--params {params.json:q} &> {log}"
