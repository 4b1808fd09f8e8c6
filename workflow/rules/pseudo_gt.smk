rule pseudo_gt:
    """Feature refinement against the codebook-quantised rendering (pseudo ground truth)."""
    input:
        unpack(stage_inputs("pseudo_gt")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/pseudo_gt/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("pseudo_gt", w),
        upstream=stage_upstream("pseudo_gt"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/pseudo_gt/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/pseudo_gt/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("pseudo_gt", "threads")
    resources:
        mem_mb=res("pseudo_gt", "mem_mb"),
        runtime=res("pseudo_gt", "runtime"),
        gpu=res("pseudo_gt", "gpu"),
    shell:
        "python -m stages.pseudo_gt {params.inputs} --out {output.store} "
        "--params {params.json:q} &> {log}"
