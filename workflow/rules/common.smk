# Config validation, scene table, stage parameters and resources: every input function lives here.
import json
import shlex

from snakemake.utils import validate

validate(config, "../schemas/config.schema.yaml")

RESULTS = config["results"]
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


def stage_params(stage, wildcards):
    """A stage variant's parameters with the scene's per-stage overrides applied, as JSON for the CLI."""
    variant = getattr(wildcards, "variant", None)
    base = config["stages"][stage]["variants"][variant] if variant else config["stages"][stage]
    return json.dumps(deep_merge(base, scene_entry(wildcards).get("overrides", {}).get(stage, {})), sort_keys=True)


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
