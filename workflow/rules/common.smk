# Config validation, scene table, stage parameters and resources: every input function lives here.
import json
import os
import shlex
from types import SimpleNamespace

from snakemake.utils import validate

from stages.lib.bench_plan import BenchPlan, add_variants, bench_plan
from stages.lib.bench_scaling import scaling_level, scaling_scenes
from stages.lib.params import deep_merge

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
WEIGHTS_DIR = config.get("weights_dir", "weights")  # model checkpoints: python -m stages.weights fetch
# gsplat's one-off CUDA build (~70-80 s) is cached in torch's extensions root; the profiles' torch_extensions_dir puts
# it on storage every job sees (README, "Run on a SLURM cluster"). Jobs inherit this environment (local subprocesses;
# sbatch --export=ALL, and each cluster job re-reads this file with the same config).
if config.get("torch_extensions_dir"):
    os.environ.update(TORCH_EXTENSIONS_DIR=os.path.abspath(os.path.expanduser(os.path.expandvars(
        str(config["torch_extensions_dir"])))))
SCENES = {(s["dataset"], s["scene"]): s for s in config["scenes"]}
# The bench's scaling run (bench.scaling) derives scenes of other sizes from a bench scene; only the bench reads them.
SCALING = scaling_scenes(config)
SCALING_LEVEL = scaling_level(config) if SCALING else None
SCENE_ENTRIES = {**SCENES, **{(s.dataset, s.scene): s.entry for s in SCALING}}


wildcard_constraints:
    dataset=r"[A-Za-z0-9_\-]+",
    scene=r"[A-Za-z0-9_\-]+",
    variant=r"[A-Za-z0-9_\-]+",


def scene_entry(wildcards):
    return SCENE_ENTRIES[(wildcards.dataset, wildcards.scene)]


# The stage graph: the stores each stage may read from upstream stages, as {CLI input name: the upstream stages
# that may provide it}, split into required inputs and OPTIONAL ones. Every stage also reads the scene store.
# A stage variant's ``after`` block names the variant of each upstream stage it reads: one provider of every
# required input, and any optional input the method needs (e.g. CCL-LGS: ``codebook`` after masks + track +
# features, ``train_features`` after train_gs + masks + codebook). Jobs are per variant, so two stages may read
# each other in different variants. Methods share a stage output exactly when they name the same variant.
# The rule passes every input the job got as ``--<input name> <path>`` (``input_args``).
UPSTREAM = {
    "train_gs": {"required": {}, "optional": {}},
    "masks": {"required": {}, "optional": {}},
    "track": {"required": {"masks": ["masks"]}, "optional": {}},
    "features": {"required": {"masks": ["masks"]}, "optional": {}},
    "mask_scales": {"required": {"gaussians": ["train_gs"], "masks": ["masks"]}, "optional": {}},
    "train_features": {
        "required": {"gaussians": ["train_gs"], "masks": ["masks"]},
        "optional": {"codebook": ["codebook"], "tracks": ["track"], "features": ["features"],
                     "mask_scales": ["mask_scales"]},
    },
    "codebook": {
        "required": {},
        "optional": {"gaussians": ["train_features"], "masks": ["masks"], "tracks": ["track", "associate"],
                     "features": ["features"], "mask_scales": ["mask_scales"]},
    },
    "pseudo_gt": {"required": {"gaussians": ["train_features"], "codebook": ["codebook"]}, "optional": {}},
    "associate": {
        "required": {"gaussians": ["pseudo_gt", "train_features"], "masks": ["masks"]},
        "optional": {"codebook": ["codebook"], "features": ["features"], "tracks": ["track"]},
    },
    "evaluate_prompt": {"required": {"gaussians": ["train_features"], "mask_scales": ["mask_scales"]}, "optional": {}},
    "capability": {"required": {}, "optional": {}},
    "distill": {"required": {"capability": ["capability"]}, "optional": {"gaussians": ["train_gs"]}},
    "evaluate_semantic": {
        "required": {},
        "optional": {"gaussians": ["pseudo_gt", "train_features", "train_gs"], "codebook": ["codebook"],
                     "association": ["associate"], "features": ["features"], "capability": ["capability"],
                     "distilled": ["distill"]},
    },
    "evaluate_annotations": {
        "required": {"gaussians": ["pseudo_gt", "train_features"], "codebook": ["codebook"]},
        "optional": {"association": ["associate"], "features": ["features"]},
    },
    "evaluate_instances": {
        "required": {"gaussians": ["train_features", "pseudo_gt"]},
        "optional": {"codebook": ["codebook"], "masks": ["masks"], "tracks": ["associate", "track"]},
    },
}


def variant_config(stage, variant):
    variants = config["stages"].get(stage, {}).get("variants", {})
    if variant not in variants:
        raise ValueError(f"config.yaml: stage {stage!r} has no variant {variant!r} (known: {sorted(variants)})")
    return variants[variant]


def upstream_variants(stage, variant):
    """{input name: (upstream stage, its variant)} of the inputs the variant's ``after`` block names.

    Errors name the variant: an ``after`` entry that is no allowed upstream of ``stage``, a required input without
    a provider, or one input named through two of its providers.
    """
    where = f"config.yaml: stages.{stage}.variants.{variant}.after"
    after = variant_config(stage, variant).get("after", {})
    graph = UPSTREAM[stage]
    inputs = {**graph["required"], **graph["optional"]}
    allowed = sorted({up for providers in inputs.values() for up in providers})
    unknown = sorted(set(after) - set(allowed))
    if unknown:
        raise ValueError(f"{where} names {unknown}, which {stage} cannot read; allowed upstream stages: {allowed}")
    found = {}
    for name, providers in inputs.items():
        named = [up for up in providers if up in after]
        if len(named) > 1:
            raise ValueError(f"{where} names {named}, but {stage} reads its {name!r} input from only one of them")
        if named:
            found[name] = (named[0], after[named[0]])
        elif name in graph["required"]:
            raise ValueError(f"{where} must name a variant of {' or '.join(providers)} (the {name!r} input)")
    return found


def input_args(wildcards, input):
    """``params:`` function: every input the job got as ``--<input name> <path>`` (``_`` as ``-``), shell-quoted."""
    return " ".join(f"--{name.replace('_', '-')} {shlex.quote(str(path))}" for name, path in input.items())


def stage_params(stage, wildcards):
    """A stage variant's parameters (without ``after``) with the scene's overrides applied, as JSON for the CLI."""
    variant = getattr(wildcards, "variant", None)
    base = variant_config(stage, variant) if variant else config["stages"][stage]
    base = {k: v for k, v in base.items() if k != "after"}
    return json.dumps(deep_merge(base, scene_entry(wildcards).get("overrides", {}).get(stage, {})), sort_keys=True)


def ingest_params(dataset, scene):
    """The ingest stage's parameters for one scene (reader, path, options with overrides)."""
    entry = SCENE_ENTRIES[(dataset, scene)]
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


def check_variant_graph():
    """Every variant's ``after`` is valid (``upstream_variants``) and no variant reads itself through its upstreams."""
    done = set()

    def visit(stage, variant, path):
        if (stage, variant) in path:
            cycle = " -> ".join(f"{s}/{v}" for s, v in path[path.index((stage, variant)):] + [(stage, variant)])
            raise ValueError(f"config.yaml: the variants' after: blocks form a cycle: {cycle}")
        if (stage, variant) in done:
            return
        for up, up_variant in upstream_variants(stage, variant).values():
            visit(up, up_variant, path + [(stage, variant)])
        done.add((stage, variant))

    for stage in UPSTREAM:
        for variant in config["stages"].get(stage, {}).get("variants", {}):
            visit(stage, variant, [])


def check_recipes():
    """Every recipe names existing variants, and each variant's ``after`` agrees with the recipe."""
    for method in config["run_methods"]:
        if method not in config["methods"]:
            raise ValueError(f"config.yaml: run_methods lists {method!r}, which is not a method recipe")
    recipes = [(m, config["methods"][m]) for m in config["run_methods"]]
    for method, recipe in recipes + [(f"{run.method} (bench level {run.level})", run.recipe) for run in BENCH.runs]:
        for stage, variant in recipe.items():
            if stage not in UPSTREAM and stage != "evaluate_render":
                raise ValueError(f"config.yaml: method {method!r} names unknown stage {stage!r}")
            if stage in UPSTREAM:
                for up, up_variant in upstream_variants(stage, variant).values():
                    if recipe.get(up, up_variant) != up_variant:
                        raise ValueError(f"config.yaml: method {method!r} uses {stage} variant {variant!r}, which "
                                         f"reads {up} variant {up_variant!r}, but the recipe names {recipe[up]!r}")


# The benchmark (target bench in workflow/rules/bench.smk): every bench method at every corruption level; the derived
# variants <variant>__<level> join the stage variants before the checks below (stages/lib/bench_plan.py).
BENCH = bench_plan(config) if "bench" in config else BenchPlan()
add_variants(config, BENCH)

check_variant_graph()
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
