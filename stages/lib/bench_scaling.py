"""The bench's scaling run: every bench method on scenes of several sizes derived from one bench scene, and how each
stage's cost grows with the scene.

``bench.scaling: {views: [n1, n2, ...], scene: dataset/scene, level: name}`` derives from the bench scene (default:
the bench's first scene) one scene per number of views, ``<scene>_v<n>`` (the bench scene itself where it already has
``n`` views), each computed once and shared by every method at the scaling level (default: the bench's first level).
The growth exponent of a cost c in a size n is the least-squares slope b of log c = a + b log n: 1 is linear growth,
above 1 faster than linear.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

COSTS = {"wall_s": "Wall time (s)", "peak_rss_mb": "Peak RSS (MB)", "peak_gpu_mb": "Peak GPU memory (MB)"}
SIZES = {"views": "Views", "gaussians": "Gaussians"}


@dataclass(frozen=True)
class ScalingScene:
    """One size of the scaling run: the scene's dataset and name, its number of views and its scenes-table entry."""

    dataset: str
    scene: str
    views: int
    entry: dict[str, Any]


def scaling_scenes(config: dict[str, Any]) -> list[ScalingScene]:
    """The scenes of ``config['bench']['scaling']``, smallest first (none when the bench has no ``scaling`` block).

    The base scene's entry is copied with ``options.num_views`` set (an ``overrides.ingest.num_views`` is dropped), so
    every other option, the resolution included, stays the bench scene's."""
    bench = config.get("bench", {})
    scaling = bench.get("scaling")
    if not scaling:
        return []
    table = {f"{s['dataset']}/{s['scene']}": s for s in config["scenes"]}
    label = scaling.get("scene") or (bench.get("scenes") or list(table))[0]
    if label not in table:
        raise ValueError(f"config.yaml: bench.scaling.scene names {label!r}, which is not in the scenes table")
    base = table[label]
    if base["reader"] != "synthetic":
        raise ValueError(f"config.yaml: bench.scaling derives scenes by their number of views, which only the "
                         f"synthetic reader generates; {label!r} is read by {base['reader']!r}")
    base_views = base.get("overrides", {}).get("ingest", {}).get("num_views", base.get("options", {}).get("num_views"))
    scenes = []
    for views in sorted(int(v) for v in scaling["views"]):  # snakemake --config gives digit strings
        if views == base_views:
            scenes.append(ScalingScene(base["dataset"], base["scene"], views, base))
            continue
        entry = copy.deepcopy(base)
        entry["scene"] = f"{base['scene']}_v{views}"
        if f"{entry['dataset']}/{entry['scene']}" in table:
            raise ValueError(f"config.yaml: bench.scaling's scene {entry['dataset']}/{entry['scene']} is already in "
                             "the scenes table (the _v<views> suffix is the scaling run's)")
        entry["options"] = {**entry.get("options", {}), "num_views": views}
        entry.get("overrides", {}).get("ingest", {}).pop("num_views", None)
        scenes.append(ScalingScene(entry["dataset"], entry["scene"], views, entry))
    return scenes


def scaling_level(config: dict[str, Any]) -> str:
    """The corruption level the scaling run uses (``bench.scaling.level``, default the bench's first level)."""
    bench = config["bench"]
    level = bench["scaling"].get("level") or bench["levels"][0]
    if level not in bench["levels"]:
        raise ValueError(f"config.yaml: bench.scaling.level {level!r} is not one of bench.levels {bench['levels']}")
    return level


def growth_exponent(size: np.ndarray, cost: np.ndarray) -> float:
    """Least-squares slope b of log cost = a + b log size over the pairs with a positive, finite cost and size; NaN
    with fewer than two distinct sizes among them."""
    size, cost = np.asarray(size, float), np.asarray(cost, float)
    keep = np.isfinite(size) & np.isfinite(cost) & (size > 0) & (cost > 0)
    if len(np.unique(size[keep])) < 2:
        return float("nan")
    return float(np.polyfit(np.log(size[keep]), np.log(cost[keep]), 1)[0])


def scaling_costs(jobs: pd.DataFrame, sizes: pd.DataFrame, stages: list[str]) -> pd.DataFrame:
    """Per method, stage and scene size: the number of views and Gaussians, mean wall time and the most peak RSS and
    GPU memory. ``jobs``: ``bench_cost.job_costs`` of the scaling rows; ``sizes``: per (method, dataset, scene) its
    ``views`` and ``gaussians`` (NaN where the recipe trains none)."""
    rows = jobs.merge(sizes, on=["method", "dataset", "scene"], how="left")
    table = rows.groupby(["method", "stage", "views"], as_index=False).agg(
        gaussians=("gaussians", "max"), wall_s=("wall_s", "mean"), peak_rss_mb=("peak_rss_mb", "max"),
        peak_gpu_mb=("peak_gpu_mb", "max"))
    table["order"] = table["stage"].map({s: i for i, s in enumerate(stages)})
    table = table.sort_values(["method", "order", "views"]).drop(columns="order")
    table["views"] = table["views"].astype(int)
    table["gaussians"] = table["gaussians"].astype("Int64")
    return table.rename(columns={"method": "Method", "stage": "Stage", **SIZES, **COSTS}).reset_index(drop=True)


def exponent_column(cost: str, size: str) -> str:
    """The header of the exponent of ``cost`` (a ``COSTS`` header) in ``size`` (a ``SIZES`` header)."""
    return f"{cost.split(' (')[0]} vs {size.lower()}"


def growth_exponents(costs: pd.DataFrame) -> pd.DataFrame:
    """Per method and stage of ``scaling_costs``: the growth exponent of every cost in views and in Gaussians."""
    rows = []
    for (method, stage), group in costs.groupby(["Method", "Stage"], sort=False):
        row = {"Method": method, "Stage": stage}
        for size in SIZES.values():
            for cost in COSTS.values():
                row[exponent_column(cost, size)] = growth_exponent(group[size].to_numpy(), group[cost].to_numpy())
        rows.append(row)
    return pd.DataFrame(rows)


def faster_than_linear(exponents: pd.DataFrame, column: str, what: str, size: str) -> str:
    """A sentence naming every (method, stage) whose exponent in ``column`` (``what`` in ``size``) is above 1 at the
    two decimals the report shows (a fit of exactly linear costs may land a rounding error above 1), or saying that
    none is."""
    fast = exponents[exponents[column].round(2) > 1.0]
    if fast.empty:
        return f"No stage's {what} grows faster than linearly in the {size} (every exponent at most 1.00)."
    named = ", ".join(f"{r['Method']} {r['Stage']} ({r[column]:.2f})" for _, r in fast.iterrows())
    return f"Stages whose {what} grows faster than linearly in the {size} (exponent above 1): {named}."
