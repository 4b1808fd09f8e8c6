"""The benchmark plan: every method recipe at every oracle-corruption level of one preset table.

A level names a corruption per 2D prior stage (``masks``: ``MaskCorruption``, ``track``: ``TrackCorruption``,
``features``: ``FeatureCorruption`` fields, see ``stages.lib.oracle``). For a recipe at a level, every oracle variant
of a corrupted prior stage gets a derived variant ``<variant>__<level>`` carrying the level's corruption, and every
variant that reads a derived variant (through its ``after`` block) gets one too. All other variants stay as they are,
so what no corruption reaches (the scene, the RGB Gaussians, priors of real models) is computed once and shared by
every level and method, and two methods naming the same variant share it at every level as well.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

PRIOR_STAGES = ("masks", "track", "features", "capability")  # named in the rows' prior notes
CORRUPTIBLE = ("masks", "track", "features")  # prior stages whose oracle has corruption knobs
LEVEL_SEPARATOR = "__"


@dataclass
class BenchRun:
    """One row of the benchmark: a method recipe at a corruption level (the recipe's variants already derived)."""

    method: str
    level: str
    recipe: dict[str, str]
    priors: str = ""


@dataclass
class BenchPlan:
    runs: list[BenchRun] = field(default_factory=list)
    variants: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (stage, name): derived config


def _derive(stages: dict[str, Any], stage: str, variant: str, level: str, corruption: dict[str, dict],
            plan: BenchPlan, memo: dict[tuple[str, str], str]) -> str:
    """The name of ``stage``'s variant at ``level`` (the variant itself when the level does not reach it)."""
    if (stage, variant) in memo:
        return memo[(stage, variant)]
    variants = stages.get(stage, {}).get("variants", {})
    if variant not in variants:  # stages without variants (evaluate_render reads train_gs's name) stay as named
        return variant
    cfg = variants[variant]
    after = cfg.get("after", {})
    new_after = {up: _derive(stages, up, v, level, corruption, plan, memo) for up, v in after.items()}
    corrupt = corruption.get(stage) if cfg.get("source") == "oracle" else None
    name = variant
    if corrupt or new_after != after:
        name = f"{variant}{LEVEL_SEPARATOR}{level}"
        derived = copy.deepcopy(cfg)
        if after:
            derived["after"] = new_after
        if corrupt:
            derived["corruption"] = {**cfg.get("corruption", {}), **corrupt}
        plan.variants[(stage, name)] = derived
    memo[(stage, variant)] = name
    return name


def prior_note(stages: dict[str, Any], recipe: dict[str, str], level: str, corruption: dict[str, dict]) -> str:
    """Which 2D priors a row ran on: per prior stage, the oracle with the level's corruption, or the real model."""
    parts = []
    for stage in PRIOR_STAGES:
        if stage not in recipe:
            continue
        source = stages[stage]["variants"][recipe[stage]].get("source", "oracle")
        if source != "oracle":
            parts.append(f"{stage}: {source} model")
        elif corruption.get(stage):
            parts.append(f"{stage}: oracle, {level}")
        else:
            parts.append(f"{stage}: oracle, clean")
    return "; ".join(parts) or "no 2D priors"


def bench_plan(config: dict[str, Any]) -> BenchPlan:
    """Every (method, level) of ``config['bench']`` with its derived recipe, and the derived variants to add."""
    bench = config["bench"]
    table = bench["corruption_levels"]
    plan = BenchPlan()
    for level in bench["levels"]:
        if level not in table:
            raise ValueError(f"config.yaml: bench.levels names {level!r}, which is not in bench.corruption_levels "
                             f"(known: {sorted(table)})")
        unknown = sorted(set(table[level] or {}) - set(CORRUPTIBLE))
        if unknown:
            raise ValueError(f"config.yaml: bench.corruption_levels.{level} corrupts {unknown}; corruptible prior "
                             f"stages: {list(CORRUPTIBLE)}")
    for method in bench["methods"]:
        if method not in config["methods"]:
            raise ValueError(f"config.yaml: bench.methods lists {method!r}, which is not a method recipe")
        for level in bench["levels"]:
            corruption = table[level] or {}
            memo: dict[tuple[str, str], str] = {}
            recipe = {stage: _derive(config["stages"], stage, variant, level, corruption, plan, memo)
                      for stage, variant in config["methods"][method].items()}
            plan.runs.append(BenchRun(method, level, recipe,
                                      prior_note(config["stages"], config["methods"][method], level, corruption)))
    return plan


def add_variants(config: dict[str, Any], plan: BenchPlan) -> None:
    """Write the plan's derived variants into ``config['stages']`` (a name defined twice must agree)."""
    for (stage, name), cfg in plan.variants.items():
        variants = config["stages"][stage]["variants"]
        if name in variants and variants[name] != cfg:
            raise ValueError(f"config.yaml: stages.{stage}.variants.{name} exists and differs from the bench's "
                             f"derived variant of that name (the '{LEVEL_SEPARATOR}' suffix is the bench's)")
        variants[name] = cfg
