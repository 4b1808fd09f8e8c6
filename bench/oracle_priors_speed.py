"""Wall time of the oracle 2D-prior stages (masks, track, features) on a synthetic room.

Builds the bench room's scene store (no Gaussians) and runs, in process, every oracle prior stage of the CCL-LGS
recipe (merged levels subpart+part / whole+part, track, crop features) and of the OpenInsGaussian recipe (whole masks,
crop + context features) at the clean and moderate corruption levels (``bench.common.CORRUPTION``). Appends one CSV
row per (recipe, level, stage) with its seconds and a digest of the stage's output arrays, so runs before and after a
code change can be compared for speed and for identical output.

  python -m bench.oracle_priors_speed --views 150 --width 512 --height 512 --out bench/results/oracle_priors_speed.csv
  python -m bench.oracle_priors_speed --views 24 --width 256 --height 256 --out /tmp/o.csv --profile /tmp/o.prof
  (--scene PATH reuses a scene store built by an earlier run of the same size, so runs of two code versions can be
  interleaved on one scene)
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from bench.common import base_row, level_params, load_config, recipe_params
from stages import features, masks, track
from stages.ingest import load_source
from stages.lib.cli import run_stage
from stages.lib.store import read_store

RECIPES = {"ccl": ("ccl_gpu", ("masks", "track", "features")), "openins": ("openins_gpu", ("masks", "features"))}
MODULES = {"masks": masks, "track": track, "features": features}
OUTPUTS = {"masks": ("masks", ["labels", "mask_view", "mask_level", "mask_id", "mask_area", "mask_bbox"]),
           "track": ("tracks", ["track_id", "propagated"]),
           "features": ("features", ["mask_features", "crop_features", "context_features", "text_features"])}


def digest(kind: str, path: Path, names: list[str]) -> str:
    """SHA-256 (first 16 hex digits) of a store's named arrays, bytes in order."""
    store = read_store(kind, path)
    h = hashlib.sha256()
    for name in names:
        h.update(np.ascontiguousarray(store.load(name)).tobytes())
    return h.hexdigest()[:16]


def run_recipe(recipe: str, level: str, scene: Path, work: Path, base: dict, profiler: cProfile.Profile | None
               ) -> list[dict]:
    """The recipe's oracle prior stages at one corruption level, in DAG order; one row per stage."""
    method, stages = RECIPES[recipe]
    params, folder = level_params(recipe_params(load_config(), method), level, work / recipe)
    out = {s: folder / f"{s}.zarr" for s in stages}
    rows = []
    for stage in stages:
        argv = ["--scene", str(scene), "--out", str(out[stage]), "--params", json.dumps(params[stage])]
        if stage != "masks":
            argv += ["--masks", str(out["masks"])]
        module = MODULES[stage]
        if profiler is not None:
            profiler.enable()
        t0 = time.perf_counter()
        run_stage(module.main, module.parser(), argv)
        seconds = time.perf_counter() - t0
        if profiler is not None:
            profiler.disable()
        kind, names = OUTPUTS[stage]
        rows.append({**base, "recipe": recipe, "level": level, "stage": stage, "seconds": round(seconds, 3),
                     "digest": digest(kind, out[stage], names)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=150)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--levels", nargs="+", default=["clean", "moderate"])
    ap.add_argument("--note", default="", help="free text for the CSV (machine load, code version)")
    ap.add_argument("--out", type=Path, required=True, help="CSV to append to")
    ap.add_argument("--profile", type=Path, default=None, help="write cProfile stats of the stages here")
    ap.add_argument("--scene", type=Path, default=None, help="scene store to reuse (built there if missing)")
    args = ap.parse_args()
    options = {"num_views": args.views, "width": args.width, "height": args.height, "num_points": 20000}
    base = {**base_row("oracle_priors", options), "note": args.note}
    profiler = cProfile.Profile() if args.profile else None
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        scene = args.scene or work / "scene.zarr"
        if not scene.exists():
            t0 = time.perf_counter()
            load_source("synthetic", None, options).write(scene, "ingest", options, "synthetic", "bench_room",
                                                          "synthetic")
            print(f"scene built in {time.perf_counter() - t0:.1f} s", flush=True)
        for level in args.levels:
            for recipe in args.recipes:
                rows += run_recipe(recipe, level, scene, work, base, profiler)
    if profiler is not None:
        profiler.dump_stats(str(args.profile))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, mode="a", header=not args.out.exists(), index=False)


if __name__ == "__main__":
    main()
