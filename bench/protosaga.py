"""Benchmark of Proto-SaGa and its Table 3 ablations on a synthetic room with oracle masks, ids shuffled per view.

At every corruption level (``bench.common.CORRUPTION``, mask knobs) the recipe's stages run in process, in DAG
order: masks (shuffled ids), the joint feature-field training with per-view classifiers (shared by all three), then
per method the memory-bank association (Proto-SaGa: depth + probability sets; Gaga: depth set only; the probability
set alone, Table 3's middle row), the prototypes and the instance evaluation (Gaga's protocol on the test views:
instance mIoU, precision, recall at IoU 0.5, mBIoU; and the associated train-view masks against the GT instances).
The RGB Gaussians are trained once and shared. One CSV row per (level, method, stage) with wall time and peak GPU
memory, and one ``method_total`` row per (level, method) with the metrics, the training and association times and
the whole method's time (3DGS + masks + training + association + prototypes). The CSV is rewritten (atomically)
after every method, so a run stopped by a time limit keeps every finished method.

GPU (defaults: the 150-view 512x512 room, recipes protosaga_gpu / gaga_gpu / protosaga_prob_gpu):
    python -m bench.protosaga --out bench/results/protosaga.csv
CPU smoke test (tiny room, demo recipes, short schedules):
    python -m bench.protosaga --smoke --out /tmp/protosaga_smoke.csv
Memory-bank variants on the same field (extra rows, named by the variant; ``BankConfig`` options):
    python -m bench.protosaga --bank-variants '{"protosaga_first": {"membership": "first"}}' --out ...
CPU room of the README's option table (32 views at 48x36, room seed 0 or 1, 300 joint steps; add
``--train-params '{"views_per_step": 3}'`` for three classifier steps per joint step):
    python -m bench.protosaga --smoke --feature-iterations 300 --schemes protosaga_proto --scene-options \
        '{"num_views": 32, "width": 48, "height": 36, "num_points": 3000, "num_objects": 8, "device": "cpu", "seed": 0}' \
        --bank-variants '{"protosaga_ds0.1": {"delta_s": 0.1}, "protosaga_vis0.05": {"visible_margin": 0.05}}' --out ...
"""

from __future__ import annotations

import argparse
import json
import traceback
from pathlib import Path
from typing import Callable

import pandas as pd

from bench.common import CORRUPTION, GPU_ROOM, REPO, base_row, bench_room, load_config, recipe_params, timed
from stages import associate, codebook, evaluate_instances, masks, train_features
from stages.lib.atomic import atomic_path
from stages.lib.params import deep_merge
from stages.lib.store import read_store

SMOKE_ROOM = {"num_views": 16, "width": 48, "height": 36, "num_points": 3000, "num_objects": 8, "device": "cpu"}
SMOKE_ITERATIONS = {"train_gs": 300, "train_features": 150}
# each Proto-SaGa recipe and its Table 3 ablations: Gaga (depth set only) and the probability set alone
METHODS = {"protosaga_gpu": ("gaga_gpu", "protosaga_prob_gpu"), "protosaga": ("gaga", "protosaga_prob")}
METHOD_STAGES = ("ingest", "train_gs", "masks", "train_features", "associate", "codebook")


def level_params(params: dict[str, dict], level: str) -> dict[str, dict]:
    """The recipe's parameters with the level's mask corruption (ids stay shuffled per view)."""
    p = {k: dict(v) for k, v in params.items()}
    p["masks"]["corruption"] = CORRUPTION[level][0]
    p["masks"]["shuffle_ids"] = True
    return p


def instance_metrics(csv: Path) -> dict[str, float]:
    """The first scheme's test-view scores and the associated masks' scores of an evaluate_instances table (%)."""
    table = pd.read_csv(csv)
    test = table[(table["protocol"] == "test") & table["primary"]].iloc[0]
    assoc = table[table["protocol"] == "associated"].iloc[0]
    out = {f"instance_{k}": float(test[k]) for k in ("mIoU", "precision", "recall", "mBIoU")}
    out.update({f"associated_{k}": float(assoc[k]) for k in ("mIoU", "precision", "recall")})
    out["gt_instances"], out["pred_instances"] = int(test["gt_instances"]), int(test["pred_instances"])
    return out


def write_rows(rows: list[dict], out: Path) -> None:
    """Every row so far to ``out``, rewritten whole and moved into place only when written."""
    with atomic_path(out) as tmp:
        pd.DataFrame(rows).to_csv(tmp, index=False)


def run_level(level: str, recipes: dict[str, dict], scene: Path, gaussians: Path, work: Path, rows: list[dict],
              base: dict, reuse_fields: bool = False, saved: Callable[[], None] = lambda: None) -> None:
    """masks and training once (or, with ``reuse_fields``, the level's stores of an earlier run: their stage rows
    get no time), then association, prototypes and evaluation per method; appends rows and calls ``saved`` after
    each method, so a run stopped by a time limit keeps every finished method."""
    d = work / level
    d.mkdir(parents=True, exist_ok=True)
    first = next(iter(recipes.values()))
    s = ["--scene", str(scene)]
    shared = {**base, "level": level, "method": "shared"}
    if reuse_fields and (d / "masks.zarr").exists() and (d / "train_features.zarr").exists():
        rows += [{**shared, "stage": stage, "seconds": float("nan"), "note": "reused"}
                 for stage in ("masks", "train_features")]
    else:
        timed("masks", masks.main, masks.parser, s + ["--out", str(d / "masks.zarr"), "--params",
                                                      json.dumps(first["masks"])], rows, shared)
        timed("train_features", train_features.main, train_features.parser,
              s + ["--gaussians", str(gaussians), "--masks", str(d / "masks.zarr"), "--out",
                   str(d / "train_features.zarr"), "--params", json.dumps(first["train_features"])], rows, shared)
    field = ["--gaussians", str(d / "train_features.zarr"), "--masks", str(d / "masks.zarr")]
    for method, p in recipes.items():
        m = {**base, "level": level, "method": method}
        out = d / method
        steps = [
            ("associate", associate, s + field + ["--out", str(out / "associate.zarr")]),
            ("codebook", codebook, s + field + ["--tracks", str(out / "associate.zarr"), "--out",
                                                str(out / "codebook.zarr")]),
            ("evaluate_instances", evaluate_instances,
             s + field + ["--codebook", str(out / "codebook.zarr"), "--tracks", str(out / "associate.zarr"),
                          "--out", str(out / "instances.zarr"), "--table", str(out / "instances.csv")]),
        ]
        for stage, module, argv in steps:
            timed(stage, module.main, module.parser, argv + ["--params", json.dumps(p[stage])], rows, m)
        mine = [r for r in rows if r.get("level") == "" or (r.get("level") == level
                                                             and r.get("method") in (method, "shared"))]
        seconds = {stage: sum(r["seconds"] for r in mine if r["stage"] == stage) for stage in METHOD_STAGES}
        measured = [r["peak_gpu_mem_gib"] for r in mine if r.get("peak_gpu_mem_gib") == r.get("peak_gpu_mem_gib")
                    and "peak_gpu_mem_gib" in r]
        peak = max(measured, default=float("nan"))
        rows.append({**m, "stage": "method_total", "seconds": sum(seconds.values()),
                     "association_options": json.dumps({k: v for k, v in p["associate"].items() if k != "rule"}),
                     "train_seconds": seconds["train_features"], "association_seconds": seconds["associate"],
                     "prototype_seconds": seconds["codebook"], "gs_seconds": seconds["train_gs"],
                     "peak_gpu_mem_gib": peak,
                     "num_gaussians": read_store("feature_gaussians", d / "train_features.zarr").sizes["N"],
                     "bank_entries": read_store("tracks", out / "associate.zarr").attrs["num_tracks"],
                     **instance_metrics(out / "instances.csv")})
        print(json.dumps(rows[-1]), flush=True)
        saved()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="protosaga_gpu", choices=sorted(METHODS),
                    help="Proto-SaGa recipe in config.yaml; its Table 3 ablations run beside it")
    ap.add_argument("--scene-options", type=json.loads, default=None, help="synthetic room (default: 150 views 512^2)")
    ap.add_argument("--levels", default="clean,moderate,strong")
    ap.add_argument("--gs-iterations", type=int, default=None, help="override the recipe's train_gs iterations")
    ap.add_argument("--gs-params", type=json.loads, default={},
                    help='JSON merged into the RGB Gaussians\' parameters, e.g. \'{"densify": {"grow_grad2d": 0.0002}}\'')
    ap.add_argument("--feature-iterations", type=int, default=None, help="override the joint training's iterations")
    ap.add_argument("--train-params", type=json.loads, default={},
                    help='JSON merged into the joint training\'s parameters, e.g. \'{"objective_params": {"lr": 0.005}}\'')
    ap.add_argument("--schemes", default=None,
                    help="comma-separated inference schemes to evaluate (default: the recipe's; the first is the "
                         "reported one)")
    ap.add_argument("--bank-variants", type=json.loads, default={},
                    help='extra association variants on the same field, name -> memory-bank options over the Proto-SaGa '
                         'recipe, e.g. \'{"protosaga_first": {"membership": "first"}, "gaga+patch32": '
                         '{"semantic": false, "patch_size": 32}}\'')
    ap.add_argument("--smoke", action="store_true", help="tiny CPU room, demo recipes, short schedules")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_protosaga")
    ap.add_argument("--reuse-gaussians", action="store_true",
                    help="keep the scene and RGB Gaussians of an earlier run in --work (their times come from it)")
    ap.add_argument("--reuse-fields", action="store_true",
                    help="keep each level's masks and trained field of an earlier run in --work (association variants "
                         "on the same fields; those stages' times are left empty)")
    ap.add_argument("--out", required=True, help="CSV to write the rows to")
    args = ap.parse_args()

    method = "protosaga" if args.smoke else args.method
    scene_options = args.scene_options or (SMOKE_ROOM if args.smoke else GPU_ROOM)
    config = load_config()
    recipes = {name: recipe_params(config, name) for name in (method, *METHODS[method])}
    for p in recipes.values():
        if args.smoke:
            p["train_gs"]["iterations"] = SMOKE_ITERATIONS["train_gs"]
            p["train_features"]["iterations"] = SMOKE_ITERATIONS["train_features"]
        if args.gs_iterations:
            p["train_gs"]["iterations"] = args.gs_iterations
        p["train_gs"] = deep_merge(p["train_gs"], args.gs_params)
        if args.feature_iterations:
            p["train_features"]["iterations"] = args.feature_iterations
        p["train_features"].update(args.train_params)
        if args.schemes:
            p["evaluate_instances"]["schemes"] = {s: {} for s in args.schemes.split(",")}
            p["evaluate_instances"]["primary"] = args.schemes.split(",")[0]
    for name, bank in args.bank_variants.items():
        recipes[name] = {stage: dict(p) for stage, p in recipes[method].items()}
        recipes[name]["associate"].update(bank)
    first = recipes[method]
    base = {**base_row(method, scene_options), "scene_seed": scene_options.get("seed", 0),
            "feature_iterations": first["train_features"]["iterations"],
            "views_per_step": first["train_features"].get("views_per_step", 1)}
    rows: list[dict] = []
    scene, gaussians = bench_room(args.work, scene_options, first["train_gs"], rows, base, args.reuse_gaussians)
    for level in args.levels.split(","):
        try:
            run_level(level, {name: level_params(p, level) for name, p in recipes.items()}, scene, gaussians,
                      args.work, rows, base, args.reuse_fields, saved=lambda: write_rows(rows, Path(args.out)))
        except Exception:  # keep the other levels: a failed level leaves an error row
            rows.append({**base, "level": level, "stage": "error", "note": traceback.format_exc(limit=3)[-500:]})
            print(traceback.format_exc(), flush=True)
        write_rows(rows, Path(args.out))
    summary = pd.DataFrame([r for r in rows if r["stage"] == "method_total"])
    if len(summary):
        print(summary[["level", "method", "instance_mIoU", "instance_precision", "instance_recall", "associated_mIoU",
                       "seconds", "peak_gpu_mem_gib"]].to_string(index=False))


if __name__ == "__main__":
    main()
