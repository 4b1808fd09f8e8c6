rule evaluate_prompt:
    """Promptable 3D segmentation metrics (NVOS / SPIn-NeRF protocols) of a SAGA field."""
    input:
        unpack(stage_inputs("evaluate_prompt")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_prompt/{{variant}}.zarr"),
        table=f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_prompt/{{variant}}.csv",
    params:
        json=lambda w: stage_params("evaluate_prompt", w),
        upstream=stage_upstream("evaluate_prompt"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/evaluate_prompt/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/evaluate_prompt/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("evaluate_prompt", "threads")
    resources:
        mem_mb=res("evaluate_prompt", "mem_mb"),
        runtime=res("evaluate_prompt", "runtime"),
        gpu=res("evaluate_prompt", "gpu"),
    shell:
        "python -m stages.evaluate_prompt {params.inputs} --out {output.store} --table {output.table} "
        "--params {params.json:q} &> {log}"
