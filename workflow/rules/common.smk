# Config validation, scene table, stage parameters and resources: every input function lives here.
import json
import shlex
from types import SimpleNamespace

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


def ingest_params(dataset, scene):
    """The ingest stage's parameters for one scene (reader, path, options with overrides)."""
    entry = SCENES[(dataset, scene)]
    return {"reader": entry["reader"], "path": entry.get("path"),
            "options": deep_merge(entry.get("options", {}), entry.get("overrides", {}).get("ingest", {}))}


def upstream_params(dataset, scene, variant=None):
    """Upstream stages' parameters as JSON, listed in downstream ``params:``.

    A failed or cancelled job's outputs are deleted, and Snakemake does not rerun a job whose outputs
    exist only because an input went missing: carrying the lineage keeps every dependant stale until
    the changed upstream stage has finished.
    """
    lineage = {"ingest": ingest_params(dataset, scene)}
    if variant is not None:
        w = SimpleNamespace(dataset=dataset, scene=scene, variant=variant)
        lineage["train_gs"] = json.loads(stage_params("train_gs", w))
    return json.dumps(lineage, sort_keys=True)


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
