"""Benchmark of SAS's 3D distillation (recipe ``sas_gpu`` in config.yaml) on the synthetic room with oracle 2D models.

Ingests the room, runs the capability stage (oracle source) and the 2D-fusion row (capability-guided, Eq. 6-8), then
the distill stage in process for Table 3's lower rows on the fastest backend (pixel-point distillation, superpoint
distillation, superpoint distillation + TESD; the recipe's schedule) and each evaluated like the whole method
(``sas_distilled``); every other backend that imports (``--backends``) trains the + TESD schedule for
``--speed-epochs`` epochs for its speed only (``--speed-only``: every backend, the fastest too, runs only that). One
CSV row per stage (wall time, peak GPU memory) and one ``result`` row per row of the table: 3D mIoU / mAcc (ScanNet
19 classes), seconds per epoch and points per second of training, the backend (every row names the
``--scene-options`` and ``--distill-options`` overrides); a ``method_total`` row sums capability + distill (+ TESD)
+ evaluation for the whole method (target <= 15 min on one H100 / H200). Per-class confusion of the oracle models:
``--level`` as bench/sas.py (``strong`` = the recipe's rates).

GPU machine (150 views at 512x512, 100k points):
  python -m bench.sas3d --out bench/results/sas3d.csv
CPU smoke test (a tiny room and schedule, every backend that imports here):
  python -m bench.sas3d --smoke --out /tmp/sas3d.csv
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from bench.common import GPU_ROOM, REPO, append_rows, base_row, load_config, recipe_params, save_partial, timed
from bench.sas import LEVEL_SCALE, scaled_models
from stages import capability, distill, evaluate_semantic
from stages.ingest import load_source
from stages.lib.sparse_conv import available_backends
from stages.lib.store import read_store

SCHEDULES = {"pixel-point": {"distillation": "point", "tesd_epochs": 0},
             "superpoint": {"distillation": "superpoint", "tesd_epochs": 0},
             "superpoint + TESD": {}}
SMOKE_ROOM = {"num_views": 10, "width": 40, "height": 30, "num_points": 1500}
SMOKE_DISTILL = {"epochs": 6, "tesd_epochs": 2, "steps_per_epoch": 1, "width": 0.25, "voxel_size": 0.2, "lr": 0.01}


def evaluate(name: str, scene: Path, inputs: list[str], params: dict, work: Path, rows: list[dict],
             base: dict) -> dict:
    """evaluate_semantic in process; returns its 3D metrics."""
    out = work / f"semantic_{name.replace(' ', '_').replace('+', 'plus')}"
    timed(f"evaluate_semantic[{name}]", evaluate_semantic.main, evaluate_semantic.parser,
          ["--scene", str(scene), *inputs, "--out", f"{out}.zarr", "--table", f"{out}.csv",
           "--params", json.dumps(params)], rows, base)
    attrs = read_store("semantic_metrics", f"{out}.zarr").attrs
    return {"miou_3d": attrs["miou_3d"], "macc_3d": attrs["macc_3d"], "eval_seconds": rows[-1]["seconds"]}


def run_distill(name: str, backend: str, params: dict, scene: Path, cap: Path, work: Path, rows: list[dict],
                base: dict, evaluated: bool) -> dict:
    """One distill run (and its evaluation when ``evaluated``); returns its result row."""
    out = work / f"distill_{backend}_{name.replace(' ', '_').replace('+', 'plus')}.zarr"
    timed(f"distill[{backend}, {name}]", distill.main, distill.parser,
          ["--scene", str(scene), "--capability", str(cap), "--out", str(out),
           "--params", json.dumps({**params, "backend": backend})], rows, base)
    seconds, peak = rows[-1]["seconds"], rows[-1]["peak_gpu_mem_gib"]
    attrs = read_store("distilled_points", out).attrs
    row = {**base, "stage": "result", "row": f"3D {name}", "backend": attrs["backend"], "epochs": params["epochs"],
           "seconds_per_epoch": attrs["seconds_per_epoch"], "points_per_second": attrs["points_per_second"],
           "distill_seconds": seconds, "peak_gpu_mem_gib": peak, "superpoints": attrs["num_superpoints"]}
    if evaluated:
        row.update(evaluate(f"{backend} {name}", scene, ["--distilled", str(out)], {"evaluation": "sas_distilled"},
                            work, rows, base))
    rows.append(row)
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/sas3d.csv")
    p.add_argument("--work", type=Path, default=Path("/tmp/ovgs_bench_sas3d"))
    p.add_argument("--method", default="sas_gpu", help="SAS recipe with a distill stage in config.yaml")
    p.add_argument("--scene-options", type=json.loads, default={}, help="synthetic room options (JSON)")
    p.add_argument("--distill-options", type=json.loads, default={}, help="distill parameter overrides (JSON)")
    p.add_argument("--level", default="strong", choices=list(LEVEL_SCALE), help="oracle per-class confusion")
    p.add_argument("--backends", nargs="+", default=None, help="sparse-conv backends (default: all that import)")
    p.add_argument("--speed-epochs", type=int, default=5, help="epochs of the speed-only runs of the other backends")
    p.add_argument("--rows", nargs="+", default=list(SCHEDULES), choices=list(SCHEDULES),
                   help="Table 3 rows to train (several processes can share a GPU, one row each)")
    p.add_argument("--smoke", action="store_true", help="a tiny room and schedule on CPU")
    p.add_argument("--speed-only", action="store_true",
                   help="every backend of --backends (the first too) runs only the --speed-epochs speed run")
    args = p.parse_args()
    options = {**GPU_ROOM, **(SMOKE_ROOM if args.smoke else {}), **args.scene_options}
    if not torch.cuda.is_available():
        options["device"] = "cpu"
    params = recipe_params(load_config(), args.method)
    dparams = {**params["distill"], **(SMOKE_DISTILL if args.smoke else {}), **args.distill_options}
    backends = args.backends or available_backends()
    base = {**base_row(args.method, options), "level": args.level,
            "scene_options": json.dumps(args.scene_options, sort_keys=True),
            "distill_options": json.dumps(args.distill_options, sort_keys=True)}
    rows: list[dict] = []
    args.work.mkdir(parents=True, exist_ok=True)
    scene, cap = args.work / "scene.zarr", args.work / "capability.zarr"
    t0 = time.perf_counter()
    load_source("synthetic", None, options).write(scene, "ingest", options, "synthetic", "bench_room", "synthetic")
    rows.append({**base, "stage": "ingest", "seconds": time.perf_counter() - t0})
    cparams = dict(params["capability"], models=scaled_models(params["capability"]["models"], LEVEL_SCALE[args.level]))
    timed("capability", capability.main, capability.parser,
          ["--scene", str(scene), "--out", str(cap), "--params", json.dumps(cparams)], rows, base)
    cap_seconds = rows[-1]["seconds"]
    fusion = evaluate("2D fusion", scene, ["--capability", str(cap)],
                      {"evaluation": "sas", **dparams.get("targets", {})}, args.work, rows, base)
    rows.append({**base, "stage": "result", "row": "2D fusion", **fusion})
    save_partial(rows, args.out)
    final = {}
    for i, backend in enumerate(backends):
        for name in args.rows:
            schedule = SCHEDULES[name]
            if i == 0 and not args.speed_only:
                row = run_distill(name, backend, {**dparams, **schedule}, scene, cap, args.work, rows, base, True)
                final = row if not schedule else final
            elif not schedule:
                speed = {**dparams, "epochs": args.speed_epochs,
                         "tesd_epochs": max(1, round(args.speed_epochs * 0.3))}
                run_distill(name, backend, speed, scene, cap, args.work, rows, base, False)
            save_partial(rows, args.out)
    if final:
        rows.append({**base, "stage": "method_total", "row": "SAS (capability + distill + TESD + evaluation)",
                     "backend": final["backend"], "miou_3d": final["miou_3d"],
                     "seconds": cap_seconds + final["distill_seconds"] + final["eval_seconds"]})
        print(json.dumps(rows[-1]), flush=True)
    table = append_rows(rows, args.out)
    results = table[table["stage"].isin(["result", "method_total"])]
    print(results[[c for c in ("row", "backend", "miou_3d", "seconds_per_epoch", "points_per_second", "seconds")
                   if c in results]].to_string(index=False))


if __name__ == "__main__":
    main()
