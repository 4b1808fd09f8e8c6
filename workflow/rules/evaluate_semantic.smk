rule evaluate_semantic:
    """Open-vocabulary segmentation metrics: ScanNet 3D protocol (mIoU / mAcc) and LERF 2D query protocol."""
    input:
        unpack(stage_inputs("evaluate_semantic")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_semantic/{{variant}}.zarr"),
        table=f"{RESULTS}/{{dataset}}/{{scene}}/evaluate_semantic/{{variant}}.csv",
    params:
        json=lambda w: stage_params("evaluate_semantic", w),
        upstream=stage_upstream("evaluate_semantic"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/evaluate_semantic/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/evaluate_semantic/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("evaluate_semantic", "threads")
    resources:
        mem_mb=res("evaluate_semantic", "mem_mb"),
        runtime=res("evaluate_semantic", "runtime"),
        gpu=res("evaluate_semantic", "gpu"),
    shell:
        "python -m stages.evaluate_semantic {params.inputs} --out {output.store} "
        "--table {output.table} --weights-dir {params.weights:q} --params {params.json:q} &> {log}"
