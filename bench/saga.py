"""Benchmark of the SAGA recipe on a synthetic room with oracle priors (every mask kept) at several corruption levels.

At every level (``bench.common.CORRUPTION``: mask and CLIP-feature knobs) the recipe's stages run in process, in DAG
order: masks, mask scales (Eq. 2), features, the affinity-feature training, the vote graph (A.3) and its labels, the
semantic evaluation (ScanNet 3D protocol through the vote labels) and the promptable evaluation (NVOS / SPIn-NeRF
protocols on every furniture object). One CSV row per (level, stage) with wall time and peak GPU memory, one
``method_total`` row per level with the metrics (``nvos_miou`` is the configured NVOS target view, beside
``nvos_nearest_miou`` and ``nvos_largest_miou``), then the prompt latency and the HDBSCAN decomposition time on
1M Gaussians. A second CSV (``--objects-out``, default ``<out>_nvos_objects.csv``) keeps one row per (level, NVOS
object, target view): instance, category, reference and target view, the angle between their optical axes, IoU,
precision, recall. Both CSVs are rewritten after every level, so an interrupted run keeps the finished levels.

GPU (defaults: the 150-view 512x512 room, recipe saga_gpu):
    python -m bench.saga --out bench/results/saga.csv
CPU smoke test (tiny room, demo recipe, short schedules, 20k Gaussians for the timings):
    python -m bench.saga --smoke --out /tmp/saga_smoke.csv
"""

from __future__ import annotations

import argparse
import json
import time
import traceback
from pathlib import Path

import pandas as pd
import torch

from bench.common import GPU_ROOM, REPO, base_row, bench_room, level_params, load_config, recipe_params, timed
from bench.saga_prompt import prompt_latency
from stages import associate, codebook, evaluate_prompt, evaluate_semantic, features, mask_scales, masks, train_features
from stages.lib.clustering import HDBSCANConfig
from stages.lib.store import read_store
from stages.methods.saga.decompose import decompose

SMOKE_ROOM = {"num_views": 16, "width": 48, "height": 36, "num_points": 3000, "num_objects": 8, "device": "cpu"}
SMOKE_ITERATIONS = {"train_gs": 300, "train_features": 100}
OBJECT_COLUMNS = ["instance", "category", "target_rule", "reference_view", "target_view", "view_angle", "iou",
                  "precision", "recall", "accuracy"]


def nvos_object_rows(table: Path, base: dict) -> list[dict]:
    """Per-object NVOS rows of an evaluate_prompt table (``OBJECT_COLUMNS``, fractions, angles in degrees)."""
    t = pd.read_csv(table)
    t = t[t["protocol"].str.startswith("nvos") & (t["object"] != "mean")]
    t = t.assign(instance=t["object"], target_rule=t["protocol"].str.removeprefix("nvos").str.lstrip("_"),
                 reference_view=t["reference_view"].astype(int), target_view=t["target_view"].astype(int),
                 iou=(t["mIoU"] / 100).round(4), accuracy=(t["mAcc"] / 100).round(4),
                 precision=(t["precision"] / 100).round(4), recall=(t["recall"] / 100).round(4))
    return [{**base, **row} for row in t[OBJECT_COLUMNS].to_dict("records")]


def run_level(level: str, params: dict[str, dict], scene: Path, gaussians: Path, work: Path, rows: list[dict],
              base: dict, objects: list[dict]) -> dict[str, float]:
    """The recipe's stages after train_gs at one corruption level; returns its metrics and adds its per-object NVOS
    rows to ``objects``."""
    p, d = level_params(params, level, work)
    base = {**base, "level": level}
    s, g = ["--scene", str(scene)], ["--gaussians", str(d / "train_features.zarr")]
    m, ms = ["--masks", str(d / "masks.zarr")], ["--mask-scales", str(d / "mask_scales.zarr")]
    steps = [
        ("masks", masks, s + ["--out", str(d / "masks.zarr")]),
        ("mask_scales", mask_scales, s + m + ["--gaussians", str(gaussians), "--out", str(d / "mask_scales.zarr")]),
        ("features", features, s + m + ["--out", str(d / "features.zarr")]),
        ("train_features", train_features, s + m + ms + ["--gaussians", str(gaussians),
                                                         "--out", str(d / "train_features.zarr")]),
        ("codebook", codebook, s + g + m + ms + ["--out", str(d / "codebook.zarr")]),
        ("associate", associate, s + g + m + ["--codebook", str(d / "codebook.zarr"), "--features",
                                              str(d / "features.zarr"), "--out", str(d / "associate.zarr")]),
        ("evaluate_semantic", evaluate_semantic, s + g + ["--codebook", str(d / "codebook.zarr"), "--association",
                                                          str(d / "associate.zarr"), "--out",
                                                          str(d / "semantic.zarr"), "--table", str(d / "semantic.csv")]),
        ("evaluate_prompt", evaluate_prompt, s + g + ms + ["--out", str(d / "prompt.zarr"),
                                                           "--table", str(d / "prompt.csv")]),
    ]
    for stage, module, argv in steps:
        timed(stage, module.main, module.parser, argv + ["--params", json.dumps(p[stage])], rows, base)
    semantic = read_store("semantic_metrics", d / "semantic.zarr").attrs
    summary = read_store("prompt_metrics", d / "prompt.zarr").attrs["summary"]
    out = {"miou_3d": semantic["miou_3d"], "macc_3d": semantic["macc_3d"], "miou_2d": semantic["miou_2d"],
           "train_seconds": read_store("feature_gaussians", d / "train_features.zarr").attrs["train_seconds"]}
    for protocol, values in summary.items():
        out.update({f"{protocol}_miou": values["mIoU"], f"{protocol}_macc": values["mAcc"],
                    f"{protocol}_objects": values["objects"]})
    objects += nvos_object_rows(d / "prompt.csv", base)
    return out


def synchronise() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def decomposition_time(n: int, dim: int, device: str) -> dict[str, float]:
    """HDBSCAN decomposition (1 % subsample + centroid assignment) of n Gaussians with 40 planted clusters."""
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(40, dim, generator=gen)
    feats = (centres[torch.randint(0, 40, (n,), generator=gen)] + 0.2 * torch.randn(n, dim, generator=gen)).to(device)
    synchronise()
    t0 = time.perf_counter()
    labels = decompose(feats, torch.ones(dim, device=device), HDBSCANConfig(min_cluster_size=10))
    synchronise()
    return {"gaussians": n, "seconds": time.perf_counter() - t0, "clusters": int(labels.max()) + 1}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default=None, help="recipe in config.yaml (default saga_gpu; saga with --smoke)")
    ap.add_argument("--scene-options", type=json.loads, default=None, help="synthetic room options (JSON)")
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--overrides", type=json.loads, default={}, help='per-stage parameter overrides, e.g. '
                    '\'{"train_features": {"iterations": 2000}}\'')
    ap.add_argument("--timing-gaussians", type=int, default=None, help="Gaussians for latency / decomposition "
                    "(default 1M; 20k with --smoke)")
    ap.add_argument("--smoke", action="store_true", help="tiny CPU room, demo recipe, short schedules")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_saga")
    ap.add_argument("--reuse-gaussians", action="store_true", help="reuse the scene and RGB Gaussians in --work")
    ap.add_argument("--out", required=True, help="CSV to write")
    ap.add_argument("--objects-out", type=Path, default=None, help="per-object NVOS CSV (default "
                    "<out>_nvos_objects.csv)")
    args = ap.parse_args()
    objects_out = args.objects_out or Path(args.out).with_name(Path(args.out).stem + "_nvos_objects.csv")

    method = args.method or ("saga" if args.smoke else "saga_gpu")
    options = args.scene_options or (SMOKE_ROOM if args.smoke else GPU_ROOM)
    params = recipe_params(load_config(), method)
    for stage, value in (SMOKE_ITERATIONS if args.smoke else {}).items():
        params[stage]["iterations"] = value
    for stage, over in args.overrides.items():
        params[stage].update(over)
    base = base_row(method, options)
    rows: list[dict] = []
    objects: list[dict] = []
    scene, gaussians = bench_room(args.work, options, params["train_gs"], rows, base, args.reuse_gaussians)
    shared = sum(r["seconds"] for r in rows if r["stage"] in ("ingest", "train_gs"))
    for level in args.levels.split(","):
        try:
            metrics = run_level(level, params, scene, gaussians, args.work, rows, base, objects)
        except Exception:  # one failed level must not lose the others
            traceback.print_exc()
            rows.append({**base, "level": level, "stage": "method_total", "note": "failed"})
            continue
        total = shared + sum(r["seconds"] for r in rows if r.get("level") == level)
        rows.append({**base, "level": level, "stage": "method_total", "seconds": total, **metrics})
        print(json.dumps(rows[-1]), flush=True)
        pd.DataFrame(rows).to_csv(args.out, index=False)
        pd.DataFrame(objects).to_csv(objects_out, index=False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n = args.timing_gaussians or (20_000 if args.smoke else 1_000_000)
    rows.append({**base, "level": "", "stage": "prompt_latency", "gaussians": n, **prompt_latency(n, 32, 512, device)})
    print(json.dumps(rows[-1]), flush=True)
    rows.append({**base, "level": "", "stage": "decomposition", **decomposition_time(n, 32, device)})
    print(json.dumps(rows[-1]), flush=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
