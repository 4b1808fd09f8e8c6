rule evaluate_annotations:
    """The text-query datasets' 2D protocols (LERF-OVS, 3D-OVS, LERF-Mask) on a method's codebook-search query."""
    input:
        unpack(stage_inputs("evaluate_annotations")),
    output:
        table=f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_annotations/{{variant}}.csv",
    params:
        json=lambda w: stage_params("evaluate_annotations", w),
        upstream=stage_upstream("evaluate_annotations"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/evaluate_annotations/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/evaluate_annotations/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("evaluate_annotations", "threads")
    resources:
        mem_mb=res("evaluate_annotations", "mem_mb"),
        runtime=res("evaluate_annotations", "runtime"),
        gpu=res("evaluate_annotations", "gpu"),
    shell:
        "python -m stages.evaluate_annotations {params.inputs} --out {output.table} --params {params.json:q} &> {log}"
