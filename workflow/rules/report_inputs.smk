# Input functions of the report and bench rules (kept apart from the rules, as snakemake --lint asks).
def render_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_render/{v}.csv" for (d, s) in SCENES for v in method_variants("train_gs")]


def semantic_methods():
    """(method, evaluate_semantic variant) of every run method that evaluates segmentation."""
    return [(m, config["methods"][m]["evaluate_semantic"]) for m in config["run_methods"]
            if "evaluate_semantic" in config["methods"][m]]


def semantic_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_semantic/{v}.csv" for (d, s) in SCENES for _, v in semantic_methods()]


def semantic_table_args():
    return " ".join(f"{m}={scene_dir(d, s)}/evaluate_semantic/{v}.csv"
                    for (d, s) in SCENES for m, v in semantic_methods())


def prompt_methods():
    """(method, evaluate_prompt variant) of every run method with promptable segmentation (SAGA)."""
    return [(m, config["methods"][m]["evaluate_prompt"]) for m in config["run_methods"]
            if "evaluate_prompt" in config["methods"][m]]


def prompt_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_prompt/{v}.csv" for (d, s) in SCENES for _, v in prompt_methods()]


def prompt_table_args():
    return " ".join(f"{m}={scene_dir(d, s)}/evaluate_prompt/{v}.csv" for (d, s) in SCENES for m, v in prompt_methods())


TEXT_QUERY_READERS = ("lerf_ovs", "3dovs", "lerf_mask")  # scenes with text-query annotations


def annotation_methods():
    """(method, evaluate_annotations variant) of every run method scored by the text-query datasets' protocols."""
    return [(m, config["methods"][m]["evaluate_annotations"]) for m in config["run_methods"]
            if "evaluate_annotations" in config["methods"][m]]


def annotation_scenes():
    """The scenes whose reader gives text-query annotations (the only ones evaluate_annotations can score)."""
    return [(d, s) for (d, s), entry in SCENES.items() if entry["reader"] in TEXT_QUERY_READERS]


def annotation_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_annotations/{v}.csv" for (d, s) in annotation_scenes()
            for _, v in annotation_methods()]


def annotation_table_args():
    return " ".join(f"{m}={scene_dir(d, s)}/evaluate_annotations/{v}.csv"
                    for (d, s) in annotation_scenes() for m, v in annotation_methods())


def instance_methods():
    """(method, evaluate_instances variant) of every run method with a class-agnostic instance evaluation."""
    return [(m, config["methods"][m]["evaluate_instances"]) for m in config["run_methods"]
            if "evaluate_instances" in config["methods"][m]]


def instance_tables(wildcards):
    return [f"{scene_dir(d, s)}/evaluate_instances/{v}.csv" for (d, s) in SCENES for _, v in instance_methods()]


def instance_table_args():
    return " ".join(f"{m}={scene_dir(d, s)}/evaluate_instances/{v}.csv"
                    for (d, s) in SCENES for m, v in instance_methods())


def capability_methods():
    """Run methods whose recipe names a capability variant (SAS's 2D-fusion rows)."""
    return [m for m in config["run_methods"] if "capability" in config["methods"][m]]


def capability_stores(wildcards):
    return sorted({store_path(d, s, "capability", config["methods"][m]["capability"])
                   for (d, s) in SCENES for m in capability_methods()})


def capability_store_args():
    """label=path of every capability store the run methods read (label: dataset/scene/variant)."""
    variants = sorted({config["methods"][m]["capability"] for m in capability_methods()})
    return " ".join(f"{d}/{s}/{v}={store_path(d, s, 'capability', v)}" for (d, s) in SCENES for v in variants)


PRIOR_STAGES = ("masks", "track", "features", "capability")


def prior_source(stage, variant):
    """Where a prior stage variant's output comes from: oracle, or its model (sam / sam2 / clip), marked when the
    model has random weights."""
    cfg = variant_config(stage, variant)
    source = cfg.get("source", "oracle")
    return f"{source}, random weights" if cfg.get(source, {}).get("random_weights") else source


def random_weight_methods():
    """Run methods with a random-weight model among their 2D priors: their numbers check the plumbing only."""
    return [m for m in config["run_methods"] if any(
        "random weights" in prior_source(st, v) for st, v in config["methods"][m].items() if st in PRIOR_STAGES)]


def prior_notes():
    """Per method: where its 2D priors come from (oracle or which model), quoted for the shell."""
    notes = []
    for method in dict.fromkeys(m for m, _ in semantic_methods() + annotation_methods()):
        recipe = config["methods"][method]
        parts = [f"{stage} {recipe[stage]} ({prior_source(stage, recipe[stage])})"
                 for stage in PRIOR_STAGES if stage in recipe]
        notes.append(shlex.quote(f"{method}: 2D priors " + ", ".join(parts)))
    return " ".join(notes)


BENCH_EVALUATIONS = ("evaluate_semantic", "evaluate_prompt", "evaluate_instances")


def bench_scenes():
    """{dataset/scene: scene store} of the bench's scenes (bench.scenes, default the whole scenes table)."""
    chosen = config.get("bench", {}).get("scenes") or [f"{d}/{s}" for d, s in SCENES]
    unknown = [label for label in chosen if tuple(label.split("/")) not in SCENES]
    if unknown:
        raise ValueError(f"config.yaml: bench.scenes names {unknown}, which are not in the scenes table")
    return {label: f"{scene_dir(*label.split('/'))}/scene.zarr" for label in chosen}


def bench_entry(d, s, run):
    """One bench row (method, level) on one scene: its evaluation tables and stores, every job's benchmark file and its
    log (its "stage cost:" line: the stage's wall time and peak RSS / GPU memory, stages/lib/stage_cost.py)."""
    recipe = run.recipe
    benchmarks = {"ingest": ["", f"{RESULTS}/benchmarks/{d}/{s}/ingest.tsv"]}
    benchmarks.update({stage: [v, f"{RESULTS}/benchmarks/{d}/{s}/{stage}/{v}.tsv"] for stage, v in recipe.items()})
    logs = {"ingest": f"{RESULTS}/logs/{d}/{s}/ingest.log"}
    logs.update({stage: f"{RESULTS}/logs/{d}/{s}/{stage}/{v}.log" for stage, v in recipe.items()})
    return {
        "method": run.method, "level": run.level, "priors": run.priors, "dataset": d, "scene": s,
        "tables": {st: f"{scene_dir(d, s)}/{st}/{recipe[st]}.csv" for st in BENCH_EVALUATIONS if st in recipe},
        "semantic_store": (store_path(d, s, "evaluate_semantic", recipe["evaluate_semantic"])
                           if "evaluate_semantic" in recipe else None),
        "benchmarks": benchmarks, "logs": logs}


def bench_entries():
    """Per scene of the bench and bench row (method, level): its ``bench_entry``."""
    return [bench_entry(*label.split("/"), run) for label in bench_scenes() for run in BENCH.runs]


def scaling_entries():
    """Per scene size of the scaling run (stages/lib/bench_scaling.py) and bench method at the scaling level: its
    ``bench_entry``, the scene's number of views and the Gaussians store of the recipe's train_gs (None without)."""
    return [{**bench_entry(size.dataset, size.scene, run), "views": size.views,
             "gaussians": (store_path(size.dataset, size.scene, "train_gs", run.recipe["train_gs"])
                           if "train_gs" in run.recipe else None)}
            for size in SCALING for run in BENCH.runs if run.level == SCALING_LEVEL]


def bench_manifest():
    """What the bench report reads (stages/bench_report.py), written to JSON by bench_manifest."""
    bench = config.get("bench", {})
    return {"levels": bench.get("levels", []), "scenes": bench_scenes(), "figure_view": bench.get("figure_view", 0),
            "figure_queries": bench.get("figure_queries", []), "entries": bench_entries(),
            "scaling": scaling_entries()}


def write_manifest(path, manifest, log_path):
    """Write the bench manifest as JSON and its row count to the job's log."""
    with open(path, "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
    with open(log_path, "w") as f:
        f.write(f"{len(manifest['entries'])} bench rows, {len(manifest['scaling'])} scaling rows\n")


def bench_inputs(wildcards):
    """Every file the manifest names: scene stores, evaluation tables and stores, benchmark files, the scaling run's
    Gaussians stores."""
    manifest = bench_manifest()
    files = set(manifest["scenes"].values())
    for entry in manifest["entries"] + manifest["scaling"]:
        files |= set(entry["tables"].values()) | {path for _, path in entry["benchmarks"].values()}
        files |= {entry[key] for key in ("semantic_store", "gaussians") if entry.get(key)}
    return sorted(files)
