rule codebook:
    """Codebook / clustering of the Gaussians' features into 3D instances."""
    input:
        unpack(stage_inputs("codebook")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/codebook/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("codebook", w),
        upstream=stage_upstream("codebook"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/codebook/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/codebook/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("codebook", "threads")
    resources:
        mem_mb=res("codebook", "mem_mb"),
        runtime=res("codebook", "runtime"),
        gpu=res("codebook", "gpu"),
    shell:
        "python -m stages.codebook {params.inputs} --out {output.store} "
        "--params {params.json:q} &> {log}"
