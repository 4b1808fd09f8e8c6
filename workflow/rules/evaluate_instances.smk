rule evaluate_instances:
    """Class-agnostic instance segmentation (Gaga protocol: Hungarian mIoU, precision, recall, mBIoU) and associated-mask consistency."""
    input:
        unpack(stage_inputs("evaluate_instances")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_instances/{{variant}}.zarr"),
        table=f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_instances/{{variant}}.csv",
    params:
        json=lambda w: stage_params("evaluate_instances", w),
        upstream=stage_upstream("evaluate_instances"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/evaluate_instances/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/evaluate_instances/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("evaluate_instances", "threads")
    resources:
        mem_mb=res("evaluate_instances", "mem_mb"),
        runtime=res("evaluate_instances", "runtime"),
        gpu=res("evaluate_instances", "gpu"),
    shell:
        "python -m stages.evaluate_instances {params.inputs} --out {output.store} "
        "--table {output.table} --params {params.json:q} &> {log}"
