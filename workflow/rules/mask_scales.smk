rule mask_scales:
    """3D scale of every mask (SAGA Eq. 2) from the rendered depth, normalised per scene."""
    input:
        unpack(stage_inputs("mask_scales")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/mask_scales/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("mask_scales", w),
        upstream=stage_upstream("mask_scales"),
        inputs=input_args,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/mask_scales/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/mask_scales/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("mask_scales", "threads")
    resources:
        mem_mb=res("mask_scales", "mem_mb"),
        runtime=res("mask_scales", "runtime"),
        gpu=res("mask_scales", "gpu"),
    shell:
        "python -m stages.mask_scales {params.inputs} --out {output.store} "
        "--params {params.json:q} &> {log}"
