"""Benchmark of the CCL-LGS recipe on a synthetic room with oracle 2D priors at several corruption levels.

Runs every stage of a CCL-LGS recipe (default ``ccl_gpu`` in config.yaml) in process, in DAG order: masks, track,
features, codebook (contrastive codebook learning + index maps), train_features (the semantic field),
evaluate_semantic; appends one CSV row per (corruption level, stage) with wall time and peak GPU memory, and one
``method_total`` row per level with the 2D LERF-protocol mIoU, localization accuracy, the 3D-OVS 2D mIoU and the
3D mIoU (ScanNet 19-class protocol). The RGB Gaussians are trained once and shared by all levels (frozen geometry),
as the DAG shares them. ``--query-latency`` also times the 2D relevance map of an 800x800 rendered feature map
(decoding + Eq. 10 + level choice + threshold; no rasterisation) and the 3D query on 1M Gaussians.

GPU (defaults: 150 views at 512x512):  python -m bench.ccl --out bench/results/ccl.csv --query-latency
CPU smoke test:  python -m bench.ccl --out /tmp/ccl.csv --scene-options '{"num_views": 12, "width": 48,
  "height": 36, "num_points": 2000}' --gs-iterations 200 --iterations 60 --epochs 2 --levels clean --query-size 64
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from bench.common import GPU_ROOM, REPO, base_row, bench_room, level_params, load_config, recipe_params, timed
from stages import codebook, evaluate_semantic, features, masks, track, train_features
from stages.lib.latency import latency_ms
from stages.lib.store import read_store

STAGES = ("masks", "track", "features", "codebook", "train_features", "evaluate_semantic")


def run_level(level: str, params: dict[str, dict], scene: Path, gaussians: Path, work: Path, rows: list[dict],
              base: dict) -> dict[str, float]:
    """The recipe's stages after train_gs for one corruption level; returns its semantic metrics."""
    p, d = level_params(params, level, work)
    base = {**base, "level": level}
    s = ["--scene", str(scene)]
    m, t, f, c, g = (str(d / f"{name}.zarr") for name in ("masks", "track", "features", "codebook", "field"))
    steps = [
        ("masks", masks, s + ["--out", m]),
        ("track", track, s + ["--masks", m, "--out", t]),
        ("features", features, s + ["--masks", m, "--out", f]),
        ("codebook", codebook, s + ["--masks", m, "--tracks", t, "--features", f, "--out", c]),
        ("train_features", train_features, s + ["--gaussians", str(gaussians), "--masks", m, "--codebook", c,
                                                "--out", g]),
        ("evaluate_semantic", evaluate_semantic, s + ["--gaussians", g, "--codebook", c,
                                                      "--out", str(d / "semantic.zarr"),
                                                      "--table", str(d / "semantic.csv")]),
    ]
    for stage, module, argv in steps:
        timed(stage, module.main, module.parser, argv + ["--params", json.dumps(p[stage])], rows, base)
    attrs = read_store("semantic_metrics", d / "semantic.zarr").attrs
    return {"miou_3d": attrs["miou_3d"], "macc_3d": attrs["macc_3d"], "miou_2d": attrs["miou_2d"],
            "loc_acc_2d": attrs.get("loc_acc_2d"), "miou_ovs_2d": attrs.get("miou_ovs_2d")}


def query_latency(size: int, n_gaussians: int, device: str, repeats: int = 100, warmup: int = 10) -> dict[str, float]:
    """Median / p95 milliseconds of the 2D relevance map (size x size rendered features; ``query_2d`` decodes the
    map's prototypes per query, ``query_2d_decoded`` reuses one decoding of the view for every text) and the 3D
    query."""
    from stages.methods.ccl.query import random_field

    field = random_field(n_gaussians, device=device)
    feature_map = torch.rand(size, size, field.gaussians["features"].shape[1], device=device)
    with torch.no_grad():
        decoded = field.pixel_prototypes(feature_map)  # text-independent: once per rendered view
    queries = {
        "query_2d": lambda text: field.query_2d(text, field.pixel_prototypes(feature_map)),
        "query_2d_decoded": lambda text: field.query_2d(text, decoded),
        "query_3d": lambda text: field.select_gaussians(text),
    }
    out: dict[str, float] = {"n_gaussians": n_gaussians, "map_size": f"{size}x{size}"}
    with torch.no_grad():
        for name, run in queries.items():
            median, p95 = latency_ms(lambda i: run(field.vocabulary[i % len(field.vocabulary)]), device, repeats,
                                     warmup)
            out[f"{name}_median_ms"], out[f"{name}_p95_ms"] = median, p95
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="ccl_gpu", help="CCL-LGS method recipe in config.yaml")
    ap.add_argument("--scene-options", type=json.loads, default=GPU_ROOM)
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--gs-iterations", type=int, default=None, help="override the recipe's train_gs iterations")
    ap.add_argument("--iterations", type=int, default=None, help="override the semantic field's iterations")
    ap.add_argument("--epochs", type=int, default=None, help="override the codebook learner's epochs")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_ccl")
    ap.add_argument("--reuse-gaussians", action="store_true",
                    help="keep the scene and RGB Gaussians of an earlier run in --work (their times come from it)")
    ap.add_argument("--query-latency", action="store_true", help="also time 2D and 3D text queries")
    ap.add_argument("--query-size", type=int, default=800, help="side of the rendered feature map of the 2D query")
    ap.add_argument("--query-gaussians", type=int, default=1_000_000)
    ap.add_argument("--out", required=True, help="CSV to write the rows to")
    args = ap.parse_args()

    params = recipe_params(load_config(), args.method)
    missing = [s for s in ("train_gs", *STAGES) if s not in params]
    if missing:
        raise SystemExit(f"recipe {args.method!r} lacks the stages {missing}")
    if args.gs_iterations:
        params["train_gs"]["iterations"] = args.gs_iterations
    if args.iterations:
        params["train_features"]["iterations"] = args.iterations
    if args.epochs is not None:
        params["codebook"]["epochs"] = args.epochs
    base = base_row(args.method, args.scene_options)
    rows: list[dict] = []
    scene, gaussians = bench_room(args.work, args.scene_options, params["train_gs"], rows, base, args.reuse_gaussians)
    for level in args.levels.split(","):  # method_total excludes the shared scene and RGB Gaussians
        metrics = run_level(level, params, scene, gaussians, args.work, rows, base)
        total = sum(r["seconds"] for r in rows if r.get("level") == level)
        rows.append({**base, "level": level, "stage": "method_total", "seconds": total, **metrics})
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)
    if args.query_latency:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        rows.append({**base, "level": "", "stage": "query_latency",
                     **query_latency(args.query_size, args.query_gaussians, device)})
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)


if __name__ == "__main__":
    main()
