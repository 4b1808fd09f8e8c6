"""Bench report stage: every method recipe at every corruption level over the bench's scenes, compared in one report.

Reads the manifest the ``bench_manifest`` rule writes (one entry per scene, method and level: its evaluation tables,
its evaluate_semantic store, the ``benchmark:`` file of every job it used) and writes under ``--out-dir``:
``bench.md`` (one table per protocol with every method that supports it, the protocol's definition, the priors of
each row, the best value per column in bold; the cost table), ``bench_metrics.csv`` (every metric per scene),
``tables/<protocol>.csv``, ``cost.csv`` / ``cost.png`` (wall time, peak RSS and GPU memory per method and stage),
``scaling/`` (the scaling run, when the manifest has one: ``scaling.csv``, costs per method, stage and scene size;
``exponents.csv``, their growth exponents in views and Gaussians; ``scaling.png``) and ``figures/`` (robustness
curves per protocol, one picture per scene of a test view, its ground truth and each method's predicted classes, and
one of two text queries with each method's selection mask beside the view and its ground truth).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pandas as pd

from stages.lib.atomic import atomic_folder_entries
from stages.lib.bench_cost import job_costs, sharing_summary, stage_cost_table
from stages.lib.bench_figures import (
    QueryPanels,
    cost_plot,
    query_figure,
    robustness_plot,
    scaling_plot,
    scene_figure,
    splat_labels,
    topdown_figure,
)
from stages.lib.bench_scaling import (
    COSTS,
    SIZES,
    exponent_column,
    faster_than_linear,
    growth_exponents,
    scaling_costs,
)
from stages.lib.bench_tables import PROTOCOLS, long_metrics, markdown, protocol_table
from stages.lib.cli import run_stage, stage_parser
from stages.lib.semantic_metrics import SCANNET_SUBSETS
from stages.lib.store import read_store
from stages.lib.tables import write_csv_atomic

STAGE_ORDER = ["ingest", "train_gs", "masks", "track", "features", "mask_scales", "capability", "train_features",
               "codebook", "pseudo_gt", "associate", "evaluate_render", "evaluate_semantic", "evaluate_instances",
               "evaluate_prompt"]
STRUCTURE = {"wall", "floor", "ceiling"}  # shown in the query figures only when a scene has too few other classes


def protocol_sections(long: pd.DataFrame, levels: list[str], out: Path) -> list[str]:
    """Per protocol that some row measured: its table (Markdown and CSV), definition and robustness curves."""
    lines = []
    for key, protocol in PROTOCOLS.items():
        if not (long["protocol"] == key).any():
            continue
        table = protocol_table(long, key, levels)
        write_csv_atomic(table, out / "tables" / f"{key}.csv")
        robustness_plot(long, key, protocol.title, levels, out / "figures" / f"robustness_{key}.png")
        lines += [f"## {protocol.title}", "", markdown(table), "", f"*Protocol.* {protocol.definition} Values: means "
                  "over the bench's scenes (the `scenes` column counts them); bold: best in the column.", "",
                  f"![robustness: {key}](figures/robustness_{key}.png)", ""]
    return lines


def cost_section(entries: list[dict], out: Path) -> list[str]:
    """Wall time, peak RSS and peak GPU memory per method and stage, and what shared stages saved."""
    jobs = job_costs(entries)
    if jobs.empty:
        return []
    costs = stage_cost_table(jobs, STAGE_ORDER)
    write_csv_atomic(costs, out / "cost.csv")
    cost_plot(costs, out / "cost.png")
    summary = pd.DataFrame([sharing_summary(jobs)])
    return ["## Cost per method and stage: where the time and memory go", "", markdown(costs, best=False), "",
            "*Wall time:* Snakemake's benchmark file, mean over the method's levels and scenes; *peak RSS:* the "
            "stage process's high-water mark of resident memory (getrusage), *peak GPU memory:* PyTorch's peak "
            "allocated CUDA memory (0 on CPU), both from the stage's own record in its log, the most over the levels "
            "and scenes (a job without that record: the benchmark file's sampled max RSS, no GPU value); *rows "
            "sharing the job:* how many (method, level) rows of a scene read that job's output (computed once).", "",
            markdown(summary, best=False), "", "![cost](cost.png)", ""]


def gaussian_count(path: str | None) -> float:
    """The number of Gaussians in a train_gs store (NaN without one)."""
    return float("nan") if path is None else float(read_store("gaussians", path).sizes["N"])


def scaling_section(scaling: list[dict], out: Path) -> list[str]:
    """The scaling run: per method and stage, wall time and peak memory at every scene size against views and
    Gaussians (``scaling/``), the growth exponents, and which stages grow faster than linearly in the views."""
    if not scaling:
        return []
    counts = {path: gaussian_count(path) for path in {e["gaussians"] for e in scaling}}
    sizes = pd.DataFrame([{"method": e["method"], "dataset": e["dataset"], "scene": e["scene"], "views": e["views"],
                           "gaussians": counts[e["gaussians"]]} for e in scaling])
    costs = scaling_costs(job_costs(scaling), sizes, STAGE_ORDER)
    exponents = growth_exponents(costs)
    write_csv_atomic(costs, out / "scaling" / "scaling.csv")
    write_csv_atomic(exponents, out / "scaling" / "exponents.csv")
    scaling_plot(costs, SIZES, COSTS, out / "scaling" / "scaling.png")
    views = ", ".join(str(v) for v in sorted(set(sizes["views"])))
    sentences = [f"- {faster_than_linear(exponents, exponent_column(cost, SIZES['views']), what, 'views')}"
                 for cost, what in zip(COSTS.values(), ("wall time", "peak RSS", "peak GPU memory"))]
    return ["## Scaling: cost against scene size", "",
            f"Every bench method at level {scaling[0]['level']} on the bench scene at {views} views (same resolution "
            "and options; each size's shared stages computed once). Growth exponent: the least-squares slope of log "
            "cost against log size over the sizes (1: linear; – where fewer than two sizes have a positive cost or "
            "a distinct size, e.g. GPU memory on CPU or a Gaussian count that does not change).", "",
            markdown(exponents, decimals=2, best=False), "", *sentences, "",
            "Costs per size: `scaling/scaling.csv`; exponents: `scaling/exponents.csv`.", "",
            "![scaling](scaling/scaling.png)", ""]


def point_labels(path: str | None) -> np.ndarray | None:
    """The 19-class labels of the scan's points an evaluate_semantic store kept, else None."""
    if path is None:
        return None
    store = read_store("semantic_metrics", path)
    return store.load("points_pred_3d") if "points_pred_3d" in store else None


def scene_sections(entries: list[dict], scenes: dict[str, str], level: str, view_index: int, out: Path) -> list[str]:
    """Per scene: one test view, its GT classes and every method's predicted classes at ``level``."""
    lines = ["## Predicted classes on a test view and from above", "",
             f"Each method's 19-class labels of the scan's points (ScanNet protocol, level {level}) splatted into the "
             "view nearest first, and the points seen from above; black: no point or unlabelled.", ""]
    for label, path in scenes.items():
        scene = read_store("scene", path)
        if "gt_semantic" not in scene or "points_semantic" not in scene:
            continue
        test = np.nonzero(scene.load("is_test"))[0]
        view = int(test[min(view_index, len(test) - 1)])
        rgb = scene["images"][view]
        h, w = rgb.shape[:2]
        points, K, w2c = scene.load("points_xyz"), scene["intrinsics"][view], scene["world_to_camera"][view]
        rows = [e for e in entries if f"{e['dataset']}/{e['scene']}" == label and e["level"] == level]
        labels = {e["method"]: point_labels(e["semantic_store"]) for e in rows if "evaluate_semantic" in e["tables"]}
        predictions = {m: None if p is None else splat_labels(points, p, K, w2c, h, w) for m, p in labels.items()}
        categories = list(scene.attrs["categories"])
        name, top = f"scene_{label.replace('/', '_')}.png", f"topdown_{label.replace('/', '_')}.png"
        scene_figure(rgb, scene["gt_semantic"][view], categories, predictions, SCANNET_SUBSETS[19],
                     f"{label}, test view {view}", out / "figures" / name)
        topdown_figure(points, scene.load("points_semantic"), categories,
                       {m: p for m, p in labels.items() if p is not None}, SCANNET_SUBSETS[19],
                       f"{label}: the scan's points from above", out / "figures" / top)
        lines += [f"### {label}", "", f"![{label}](figures/{name})", "", f"![{label} from above](figures/{top})", ""]
    return lines


def stored_query_masks(path: str | None) -> dict[str, tuple[int, np.ndarray]]:
    """{text query: (scene view, selection mask [H, W] bool)} an evaluate_semantic store kept (none: {})."""
    if path is None:
        return {}
    store = read_store("semantic_metrics", path)
    if "query_masks_2d" not in store:
        return {}
    views, masks = store.load("query_views_2d"), store.load("query_masks_2d")
    return {q: (int(v), m.astype(bool)) for q, v, m in zip(store.attrs["queries"], views, masks) if v >= 0}


def query_rows(scene, stored: dict[str, dict[str, tuple[int, np.ndarray]]], chosen: list[str],
               count: int = 2) -> list[QueryPanels]:
    """The query figure's rows: the ``chosen`` queries that some method stored a mask for, else the ``count`` whose
    ground-truth mask on its view is largest, objects before wall / floor / ceiling; each method's mask where it is on
    that query's view."""
    categories = list(scene.attrs["categories"])
    views = {q: v for masks in stored.values() for q, (v, _) in masks.items()}
    gt = {q: scene["gt_semantic"][v] == categories.index(q) for q, v in views.items()}
    largest = sorted(views, key=lambda q: (q in STRUCTURE, -gt[q].sum(), q))
    queries = [q for q in chosen if q in views] if chosen else largest[:count]
    return [QueryPanels(q, views[q], scene["images"][views[q]], gt[q],
                        {m: masks[q][1] if q in masks and masks[q][0] == views[q] else None
                         for m, masks in stored.items()}) for q in queries]


def query_sections(entries: list[dict], scenes: dict[str, str], level: str, chosen: list[str],
                   out: Path) -> list[str]:
    """Per scene: for two text queries, each method's selection mask beside the test view and its ground truth."""
    lines = []
    for label, path in scenes.items():
        scene = read_store("scene", path)
        if "gt_semantic" not in scene:
            continue
        rows = [e for e in entries if f"{e['dataset']}/{e['scene']}" == label and e["level"] == level
                and e.get("semantic_store")]
        panels = query_rows(scene, {e["method"]: stored_query_masks(e["semantic_store"]) for e in rows}, chosen)
        if not panels:
            continue
        name = f"queries_{label.replace('/', '_')}.png"
        query_figure(panels, f"{label}: text queries, level {level}", out / "figures" / name)
        lines += [f"### {label}: text queries", "", f"![{label} text queries](figures/{name})", ""]
    if lines:
        lines = ["## Text queries on a test view", "",
                 "Per text query (a class of the scene), the first test view whose ground truth shows it, the "
                 "ground-truth mask and each method's selection as its LERF-protocol evaluation rendered it (tinted "
                 "over the dimmed view; *no mask stored*: the method's evaluation kept none).", "", *lines]
    return lines


def main(args: argparse.Namespace) -> None:
    """Every file goes to a temporary sibling folder and moves into ``--out-dir`` once all were written (the manifest,
    which may lie in that folder, stays)."""
    manifest = json.loads(Path(args.manifest).read_text())
    with atomic_folder_entries(args.out_dir) as out:
        write_bench_report(manifest, out)


def write_bench_report(manifest: dict, out: Path) -> None:
    for folder in (out / "tables", out / "figures", out / "scaling"):
        folder.mkdir()
    entries, levels = manifest["entries"], manifest["levels"]
    long = long_metrics(entries)
    write_csv_atomic(long, out / "bench_metrics.csv")
    lines = ["# Benchmark: every method on identical inputs", "",
             f"Methods: {', '.join(dict.fromkeys(e['method'] for e in entries))}. Oracle-corruption levels: "
             f"{', '.join(levels)}. Scenes: {', '.join(manifest['scenes'])}. *Priors* names each row's 2D priors "
             "(oracle at a corruption level, or the real model).", ""]
    lines += protocol_sections(long, levels, out)
    lines += cost_section(entries, out)
    lines += scaling_section(manifest.get("scaling", []), out)
    lines += scene_sections(entries, manifest["scenes"], levels[0], manifest.get("figure_view", 0), out)
    lines += query_sections(entries, manifest["scenes"], levels[0], manifest.get("figure_queries", []), out)
    (out / "bench.md").write_text("\n".join(lines))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("bench_report", __doc__)
    p.add_argument("--manifest", required=True, help="JSON manifest of the bench (rule bench_manifest)")
    p.add_argument("--out-dir", required=True)
    return p


if __name__ == "__main__":
    run_stage(main, parser())
