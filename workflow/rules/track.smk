rule track:
    """Cross-view track id per mask (SAM2 propagation of the first frame's masks, or the oracle)."""
    input:
        unpack(stage_inputs("track")),
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/track/{{variant}}.zarr"),
    params:
        json=lambda w: stage_params("track", w),
        upstream=stage_upstream("track"),
        inputs=input_args,
        weights=WEIGHTS_DIR,
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/track/{{variant}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/track/{{variant}}.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("track", "threads")
    resources:
        mem_mb=res("track", "mem_mb"),
        runtime=res("track", "runtime"),
        gpu=res("track", "gpu"),
    shell:
        "python -m stages.track {params.inputs} --out {output.store} --weights-dir {params.weights:q} "
        "--params {params.json:q} &> {log}"
