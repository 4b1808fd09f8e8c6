"""Benchmark of the OpenInsGaussian recipe on a synthetic room with oracle 2D priors at several corruption levels.

Runs every stage of the ``openins`` recipe (its GPU variants in config.yaml) in process, in DAG order, and appends
one CSV row per (corruption level, stage) with wall time and peak GPU memory, plus the 3D mIoU (ScanNet 19-class
protocol over the categories present) and the 2D LERF-protocol mIoU of each level. The RGB Gaussians are trained
once and shared by all levels, as the DAG shares them. Also measures text-query latency for 1M Gaussians.

Example (GPU): python -m bench.openins --out bench/results/openins.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch
import yaml

from stages import (
    associate,
    codebook,
    evaluate_semantic,
    features,
    masks,
    pseudo_gt,
    train_features,
    train_gs,
)
from stages.ingest import load_source
from stages.lib.cli import run_stage
from stages.lib.store import read_store

REPO = Path(__file__).resolve().parents[1]
# Oracle corruption presets (stages.lib.oracle): masks per MaskCorruption, features per FeatureCorruption.
CORRUPTION = {
    "clean": ({}, {}),
    "moderate": ({"under_segment": 0.1, "over_segment": 0.1, "boundary_jitter": 1, "dropout": 0.1},
                 {"noise": 0.5, "confusion": 0.1}),
    "strong": ({"under_segment": 0.3, "over_segment": 0.3, "boundary_jitter": 2, "dropout": 0.25},
               {"noise": 1.0, "confusion": 0.3, "context_noise": 0.5}),
}


def recipe_params(config: dict[str, Any], method: str) -> dict[str, dict[str, Any]]:
    """Each stage's parameters for a method recipe (without the ``after`` wiring, which this script replaces)."""
    recipe = config["methods"][method]
    return {stage: {k: v for k, v in config["stages"][stage]["variants"][variant].items() if k != "after"}
            for stage, variant in recipe.items()}


def timed(stage: str, main: Callable, parser: Callable, argv: list[str], rows: list[dict], base: dict) -> None:
    """Run one stage in process; record its wall time and peak GPU memory."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    run_stage(main, parser(), argv)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")
    rows.append({**base, "stage": stage, "seconds": time.perf_counter() - t0, "peak_gpu_mem_gib": peak})
    print(json.dumps(rows[-1]), flush=True)


def run_level(level: str, params: dict[str, dict], scene: Path, gaussians: Path, work: Path, rows: list[dict],
              base: dict) -> dict[str, float]:
    """The recipe's stages after train_gs for one corruption level; returns its semantic metrics."""
    mask_c, feat_c = CORRUPTION[level]
    d = work / level
    d.mkdir(parents=True, exist_ok=True)
    p = {k: dict(v) for k, v in params.items()}
    p["masks"]["corruption"] = mask_c
    p["features"]["corruption"] = feat_c
    base = {**base, "level": level}
    s = ["--scene", str(scene)]
    steps = [
        ("masks", masks, s + ["--out", str(d / "masks.zarr")]),
        ("features", features, s + ["--masks", str(d / "masks.zarr"), "--out", str(d / "features.zarr")]),
        ("train_features", train_features, s + ["--gaussians", str(gaussians), "--masks", str(d / "masks.zarr"),
                                                "--out", str(d / "train_features.zarr")]),
        ("codebook", codebook, ["--gaussians", str(d / "train_features.zarr"), "--out", str(d / "codebook.zarr")]),
        ("pseudo_gt", pseudo_gt, s + ["--gaussians", str(d / "train_features.zarr"), "--codebook",
                                      str(d / "codebook.zarr"), "--out", str(d / "pseudo_gt.zarr")]),
        ("associate", associate, s + ["--gaussians", str(d / "pseudo_gt.zarr"), "--codebook", str(d / "codebook.zarr"),
                                      "--masks", str(d / "masks.zarr"), "--features", str(d / "features.zarr"),
                                      "--out", str(d / "associate.zarr")]),
        ("evaluate_semantic", evaluate_semantic, s + ["--gaussians", str(d / "pseudo_gt.zarr"), "--codebook",
                                                      str(d / "codebook.zarr"), "--association",
                                                      str(d / "associate.zarr"), "--out", str(d / "semantic.zarr"),
                                                      "--table", str(d / "semantic.csv")]),
    ]
    for stage, module, argv in steps:
        timed(stage, module.main, module.parser, argv + ["--params", json.dumps(p[stage])], rows, base)
    attrs = read_store("semantic_metrics", d / "semantic.zarr").attrs
    return {"miou_3d": attrs["miou_3d"], "macc_3d": attrs["macc_3d"], "miou_2d": attrs["miou_2d"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="openins_gpu", help="method recipe in config.yaml")
    ap.add_argument("--scene-options", type=json.loads,
                    default={"num_views": 150, "width": 512, "height": 512, "num_points": 100000, "device": "cuda"})
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--gs-iterations", type=int, default=None, help="override the recipe's train_gs iterations")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_openins")
    ap.add_argument("--reuse-gaussians", action="store_true",
                    help="keep the scene and RGB Gaussians of an earlier run in --work (their times come from it)")
    ap.add_argument("--query-latency", action="store_true", help="also time text queries on 1M Gaussians")
    ap.add_argument("--out", required=True, help="CSV to append rows to")
    args = ap.parse_args()

    config = yaml.safe_load((REPO / "config.yaml").read_text())
    params = recipe_params(config, args.method)
    if args.gs_iterations:
        params["train_gs"]["iterations"] = args.gs_iterations
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    base = {"date": dt.date.today().isoformat(), "device": device, "method": args.method,
            "views": args.scene_options.get("num_views"), "size": f"{args.scene_options.get('width')}x"
                                                                   f"{args.scene_options.get('height')}"}
    rows: list[dict] = []
    args.work.mkdir(parents=True, exist_ok=True)
    scene = args.work / "scene.zarr"
    gaussians = args.work / "train_gs.zarr"
    if args.reuse_gaussians and gaussians.exists():
        seconds = read_store("gaussians", gaussians).attrs["train_seconds"]
        rows.append({**base, "level": "", "stage": "train_gs", "seconds": seconds, "note": "reused"})
    else:
        t0 = time.perf_counter()
        load_source("synthetic", None, args.scene_options).write(scene, "ingest", args.scene_options, "synthetic",
                                                                  "bench_room", "synthetic")
        rows.append({**base, "level": "", "stage": "ingest", "seconds": time.perf_counter() - t0})
        timed("train_gs", train_gs.main, train_gs.parser,
              ["--scene", str(scene), "--out", str(gaussians), "--params", json.dumps(params["train_gs"])], rows,
              {**base, "level": ""})
    for level in args.levels.split(","):
        t_level = sum(r["seconds"] for r in rows if r["stage"] in ("ingest", "train_gs"))
        metrics = run_level(level, params, scene, gaussians, args.work, rows, base)
        total = t_level + sum(r["seconds"] for r in rows if r.get("level") == level)
        rows.append({**base, "level": level, "stage": "method_total", "seconds": total, **metrics})
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)
    if args.query_latency:
        from stages.lib.query import bench_query_latency

        lat = bench_query_latency(1_000_000, 640, 512, "cuda" if torch.cuda.is_available() else "cpu")
        rows.append({**base, "level": "", "stage": "query_latency", **lat})
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)


if __name__ == "__main__":
    main()
