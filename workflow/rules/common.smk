# Config validation, scene table, stage parameters and resources: every input function lives here.
import json
import shlex
from types import SimpleNamespace

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
WEIGHTS_DIR = config.get("weights_dir", "weights")  # model checkpoints: python -m stages.weights fetch
SCENES = {(s["dataset"], s["scene"]): s for s in config["scenes"]}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    scene=r"[A-Za-z0-9_\-]+",
    variant=r"[A-Za-z0-9_\-]+",


def deep_merge(base, override):
    """Recursive dict merge: values of ``override`` win."""
    merged = dict(base)
    for key, value in (override or {}).items():
        merged[key] = deep_merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
    return merged


def scene_entry(wildcards):
    return SCENES[(wildcards.dataset, wildcards.scene)]


# The stage graph: the stores each stage reads from upstream stages, as {CLI input name: upstream stage}.
# Every stage also reads the scene store. A stage variant's ``after`` block names the variant of each upstream
# stage it reads, so methods share a stage output exactly when they name the same variant.
UPSTREAM = {
    "train_gs": {},
    "masks": {},
    "track": {"masks": "masks"},
    "features": {"masks": "masks"},
    "train_features": {"gaussians": "train_gs", "masks": "masks"},
    "codebook": {"gaussians": "train_features"},
    "pseudo_gt": {"gaussians": "train_features", "codebook": "codebook"},
    "associate": {"gaussians": "pseudo_gt", "codebook": "codebook", "masks": "masks", "features": "features"},
    "evaluate_semantic": {"gaussians": "pseudo_gt", "codebook": "codebook", "association": "associate"},
}


def variant_config(stage, variant):
    variants = config["stages"].get(stage, {}).get("variants", {})
    if variant not in variants:
        raise ValueError(f"config.yaml: stage {stage!r} has no variant {variant!r} (known: {sorted(variants)})")
    return variants[variant]


def upstream_variants(stage, variant):
    """{input name: (upstream stage, its variant)} from the variant's ``after`` block."""
    after = variant_config(stage, variant).get("after", {})
    missing = [up for up in UPSTREAM[stage].values() if up not in after]
    if missing:
        raise ValueError(f"config.yaml: stages.{stage}.variants.{variant}.after must name a variant of {missing}")
    return {name: (up, after[up]) for name, up in UPSTREAM[stage].items()}


def stage_params(stage, wildcards):
    """A stage variant's parameters (without ``after``) with the scene's overrides applied, as JSON for the CLI."""
    variant = getattr(wildcards, "variant", None)
    base = variant_config(stage, variant) if variant else config["stages"][stage]
    base = {k: v for k, v in base.items() if k != "after"}
    return json.dumps(deep_merge(base, scene_entry(wildcards).get("overrides", {}).get(stage, {})), sort_keys=True)


def ingest_params(dataset, scene):
    """The ingest stage's parameters for one scene (reader, path, options with overrides)."""
    entry = SCENES[(dataset, scene)]
    return {"reader": entry["reader"], "path": entry.get("path"),
            "options": deep_merge(entry.get("options", {}), entry.get("overrides", {}).get("ingest", {}))}


def lineage(dataset, scene, stage, variant, into=None):
    """Parameters of a stage variant and of every stage upstream of it, keyed "stage/variant"."""
    into = {} if into is None else into
    w = SimpleNamespace(dataset=dataset, scene=scene, variant=variant)
    into[f"{stage}/{variant}"] = json.loads(stage_params(stage, w))
    for up, up_variant in upstream_variants(stage, variant).values():
        lineage(dataset, scene, up, up_variant, into)
    return into


def upstream_params(dataset, scene, *stage_variants):
    """Parameters of everything a job reads, as JSON, listed in downstream ``params:``.

    A failed or cancelled job's outputs are deleted, and Snakemake does not rerun a job whose outputs
    exist only because an input went missing: carrying the lineage keeps every dependant stale until
    the changed upstream stage has finished.
    """
    found = {"ingest": ingest_params(dataset, scene)}
    for stage, variant in stage_variants:
        lineage(dataset, scene, stage, variant, found)
    return json.dumps(found, sort_keys=True)


def store_path(dataset, scene, stage, variant):
    return f"{scene_dir(dataset, scene)}/{stage}/{variant}.zarr"


def stage_inputs(stage):
    """Input function of a stage rule: the scene store plus each upstream store named by the variant."""

    def inputs(w):
        paths = {"scene": f"{scene_dir(w.dataset, w.scene)}/scene.zarr"}
        for name, (up, up_variant) in upstream_variants(stage, w.variant).items():
            paths[name] = store_path(w.dataset, w.scene, up, up_variant)
        return paths

    return inputs


def stage_upstream(stage):
    """``params: upstream=`` function of a stage rule (see ``upstream_params``)."""
    return lambda w: upstream_params(w.dataset, w.scene, *upstream_variants(stage, w.variant).values())


def check_recipes():
    """Every recipe names existing variants, and each variant's ``after`` agrees with the recipe."""
    for method in config["run_methods"]:
        if method not in config["methods"]:
            raise ValueError(f"config.yaml: run_methods lists {method!r}, which is not a method recipe")
        recipe = config["methods"][method]
        for stage, variant in recipe.items():
            if stage not in UPSTREAM and stage != "evaluate_render":
                raise ValueError(f"config.yaml: method {method!r} names unknown stage {stage!r}")
            if stage in UPSTREAM:
                for up, up_variant in upstream_variants(stage, variant).values():
                    if recipe.get(up, up_variant) != up_variant:
                        raise ValueError(f"config.yaml: method {method!r} uses {stage} variant {variant!r}, which "
                                         f"reads {up} variant {up_variant!r}, but the recipe names {recipe[up]!r}")


check_recipes()


def res(stage, key):
    """Per-stage resources (threads, mem_mb, runtime, gpu) from the config's ``resources`` block."""
    return deep_merge(config["resources"]["default"], config["resources"].get(stage, {}))[key]


def method_variants(stage):
    """The variants of ``stage`` that the configured methods use."""
    return sorted({config["methods"][m][stage] for m in config["run_methods"] if stage in config["methods"][m]})


def scene_dir(dataset, scene):
    return f"{RESULTS}/{dataset}/{scene}"


def all_targets():
    return [f"{RESULTS}/report/report.md"]
