"""Benchmark of the OpenInsGaussian recipe on a synthetic room with oracle 2D priors at several corruption levels.

Runs every stage of the ``openins`` recipe (its GPU variants in config.yaml) in process, in DAG order, and appends
one CSV row per (corruption level, stage) with wall time and peak GPU memory, plus the 3D mIoU (ScanNet 19-class
protocol over the categories present) and the 2D LERF-protocol mIoU of each level. The RGB Gaussians are trained
once and shared by all levels, as the DAG shares them. Also measures text-query latency for 1M Gaussians.

Example (GPU): python -m bench.openins --out bench/results/openins.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd
import torch

from bench.common import GPU_ROOM, REPO, base_row, bench_room, level_params, load_config, recipe_params, timed
from stages import (
    associate,
    codebook,
    evaluate_semantic,
    features,
    masks,
    pseudo_gt,
    train_features,
)
from stages.lib.store import read_store

UPSTREAM = ("masks", "features", "train_features")


def run_level(level: str, params: dict[str, dict], scene: Path, gaussians: Path, work: Path, rows: list[dict],
              base: dict, reuse: Path | None = None, reuse_stages: tuple[str, ...] = UPSTREAM) -> dict[str, float]:
    """The recipe's stages after train_gs for one corruption level; returns its semantic metrics. With ``reuse``,
    the ``reuse_stages`` stores (default ``UPSTREAM``: the codebook onwards runs) are links to those of
    ``reuse / level`` (an earlier run on the same Gaussians; their rows say ``reused``, 0 s)."""
    p, d = level_params(params, level, work)
    base = {**base, "level": level}
    if reuse is not None:
        for stage in reuse_stages:
            link, source = d / f"{stage}.zarr", (reuse / level / f"{stage}.zarr").resolve()
            if not source.exists():
                raise FileNotFoundError(f"{source}: nothing to reuse")
            if link.is_symlink() or not link.exists():
                link.unlink(missing_ok=True)
                link.symlink_to(source)
    s = ["--scene", str(scene)]
    steps = [
        ("masks", masks, s + ["--out", str(d / "masks.zarr")]),
        ("features", features, s + ["--masks", str(d / "masks.zarr"), "--out", str(d / "features.zarr")]),
        ("train_features", train_features, s + ["--gaussians", str(gaussians), "--masks", str(d / "masks.zarr"),
                                                "--out", str(d / "train_features.zarr")]),
        ("codebook", codebook, s + ["--gaussians", str(d / "train_features.zarr"), "--out", str(d / "codebook.zarr")]),
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
        if reuse is not None and stage in reuse_stages:
            rows.append({**base, "stage": stage, "seconds": 0.0, "note": f"reused from {reuse / level}"})
            continue
        timed(stage, module.main, module.parser, argv + ["--params", json.dumps(p[stage])], rows, base)
    attrs = read_store("semantic_metrics", d / "semantic.zarr").attrs
    return {"miou_3d": attrs["miou_3d"], "macc_3d": attrs["macc_3d"], "miou_2d": attrs["miou_2d"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="openins_gpu", help="method recipe in config.yaml")
    ap.add_argument("--scene-options", type=json.loads, default=GPU_ROOM)
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--gs-iterations", type=int, default=None, help="override the recipe's train_gs iterations")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_openins")
    ap.add_argument("--reuse-gaussians", action="store_true",
                    help="keep the scene and RGB Gaussians of an earlier run in --work (their times come from it)")
    ap.add_argument("--query-latency", action="store_true", help="also time text queries on 1M Gaussians")
    ap.add_argument("--out", required=True, help="CSV to append rows to")
    args = ap.parse_args()

    params = recipe_params(load_config(), args.method)
    if args.gs_iterations:
        params["train_gs"]["iterations"] = args.gs_iterations
    base = base_row(args.method, args.scene_options)
    rows: list[dict] = []
    scene, gaussians = bench_room(args.work, args.scene_options, params["train_gs"], rows, base, args.reuse_gaussians)
    for level in args.levels.split(","):
        t_level = sum(r["seconds"] for r in rows if r["stage"] in ("ingest", "train_gs"))
        metrics = run_level(level, params, scene, gaussians, args.work, rows, base)
        total = t_level + sum(r["seconds"] for r in rows if r.get("level") == level)
        rows.append({**base, "level": level, "stage": "method_total", "seconds": total, **metrics})
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)
    if args.query_latency:
        from stages.methods.openins.query import bench_query_latency

        lat = bench_query_latency(1_000_000, 640, 512, "cuda" if torch.cuda.is_available() else "cpu")
        rows.append({**base, "level": "", "stage": "query_latency", **lat})
        print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(args.out, mode="w", index=False)


if __name__ == "__main__":
    main()
