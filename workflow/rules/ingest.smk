rule ingest:
    """Read or generate a scene into the scene store."""
    output:
        store=directory(f"{RESULTS}/{{dataset}}/{{scene}}/scene.zarr"),
    params:
        reader=lambda w: scene_entry(w)["reader"],
        path_arg=lambda w: f"--path {shlex.quote(scene_entry(w)['path'])}" if scene_entry(w).get("path") else "",
        options=lambda w: json.dumps(ingest_params(w.dataset, w.scene)["options"], sort_keys=True),
    log:
        f"{RESULTS}/logs/{{dataset}}/{{scene}}/ingest.log",
    benchmark:
        f"{RESULTS}/benchmarks/{{dataset}}/{{scene}}/ingest.tsv"
    conda:
        "../../envs/pipeline.yaml"
    threads: res("ingest", "threads")
    resources:
        mem_mb=res("ingest", "mem_mb"),
        runtime=res("ingest", "runtime"),
        gpu=res("ingest", "gpu"),
    shell:
        "python -m stages.ingest --reader {params.reader} {params.path_arg} --params {params.options:q} "
        "--dataset {wildcards.dataset} --scene {wildcards.scene} --out {output.store} &> {log}"
