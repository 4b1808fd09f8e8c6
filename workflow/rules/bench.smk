rule bench_manifest:
    """The bench's rows (bench methods x corruption levels x scenes), the scaling run's rows (bench methods x scene
    sizes, bench.scaling) and the files each one reads, as JSON."""
    output:
        manifest=f"{RESULTS}/report/bench/manifest.json",
    params:
        manifest=lambda w: bench_manifest(),
    log:
        f"{RESULTS}/logs/bench_manifest.log",
    run:
        write_manifest(output.manifest, params.manifest, log[0])

rule bench:
    """Every bench method at every oracle-corruption level over the bench's scenes, compared in one report."""
    input:
        manifest=f"{RESULTS}/report/bench/manifest.json",
        files=bench_inputs,
        train_gs_scaling=f"{RESULTS}/report/bench/train_gs_scaling.png",
    output:
        md=report(f"{RESULTS}/report/bench/bench.md", caption="../report/bench_md.rst", category="Benchmark"),
        metrics=report(f"{RESULTS}/report/bench/bench_metrics.csv", caption="../report/bench_metrics.rst",
                       category="Benchmark"),
        tables=directory(f"{RESULTS}/report/bench/tables"),
        cost=f"{RESULTS}/report/bench/cost.csv",
        cost_plot=report(f"{RESULTS}/report/bench/cost.png", caption="../report/bench_cost.rst", category="Benchmark"),
        figures=report(directory(f"{RESULTS}/report/bench/figures"), patterns=["{name}.png"],
                       caption="../report/bench_figures.rst", category="Benchmark"),
        scaling=report(directory(f"{RESULTS}/report/bench/scaling"), patterns=["{name}.png"],
                       caption="../report/bench_scaling.rst", category="Benchmark"),
    params:
        out_dir=lambda w, output: os.path.dirname(output.md),
    log:
        f"{RESULTS}/logs/bench_report.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=res("report", "gpu"),
    shell:
        "python -m stages.bench_report --manifest {input.manifest} --out-dir {params.out_dir:q} &> {log}"


rule train_gs_scaling:
    """The RGB Gaussians' cost on the GPU against train views and Gaussian count, drawn from the rows that
    bench.train_gs --scaling appended to the committed bench/results/train_gs.csv."""
    input:
        csv="bench/results/train_gs.csv",
    output:
        png=report(f"{RESULTS}/report/bench/train_gs_scaling.png", caption="../report/train_gs_scaling.rst",
                   category="Benchmark"),
    log:
        f"{RESULTS}/logs/train_gs_scaling.log",
    conda:
        "../../envs/pipeline.yaml"
    threads: res("report", "threads")
    resources:
        mem_mb=res("report", "mem_mb"),
        runtime=res("report", "runtime"),
        gpu=res("report", "gpu"),
    shell:
        "python -m bench.train_gs --out {input.csv:q} --plot-scaling {output.png:q} &> {log}"
