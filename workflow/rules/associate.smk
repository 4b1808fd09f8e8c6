rule associate:
    """3D-2D association: a language feature for every 3D instance."""
    input:
        unpack(stage_inputs("associate")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/associate/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("associate", w),
        upstream=stage_upstream("associate"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/associate/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/associate/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("associate", "threads")
    resources:
        mem_mb=res("associate", "mem_mb"),
        runtime=res("associate", "runtime"),
        gpu=res("associate", "gpu"),
    shell:
        "python -m stages.associate {params.inputs} --out {output.store} "
        "--params {params.json:q} &> {log}"
