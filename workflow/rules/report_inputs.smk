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


def prior_notes():
    """Per method: where its 2D priors come from (oracle or which model), quoted for the shell."""
    notes = []
    for method, _ in semantic_methods():
        recipe = config["methods"][method]
        parts = [f"{stage} {recipe[stage]} ({variant_config(stage, recipe[stage]).get('source', 'oracle')})"
                 for stage in ("masks", "track", "features", "capability") if stage in recipe]
        notes.append(shlex.quote(f"{method}: 2D priors " + ", ".join(parts)))
    return " ".join(notes)
