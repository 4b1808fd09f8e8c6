"""Train the shared benchmark room once: its scene store and RGB Gaussians, which every method bench then reuses
(``--work <dir> --reuse-gaussians``), as the DAG shares one ``train_gs`` store between methods.

GPU:  python -m bench.room --work results/bench_room --gs-iterations 15000 --out bench/results/room.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from bench.common import GPU_ROOM, REPO, base_row, bench_room, load_config, recipe_params


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--method", default="openins_gpu", help="recipe whose train_gs variant trains the room")
    ap.add_argument("--scene-options", type=json.loads, default=GPU_ROOM)
    ap.add_argument("--gs-iterations", type=int, default=None, help="override the recipe's train_gs iterations")
    ap.add_argument("--work", type=Path, default=REPO / "results/bench_room")
    ap.add_argument("--out", required=True, help="CSV to write the ingest and train_gs rows to")
    args = ap.parse_args()
    gs_params = recipe_params(load_config(), args.method)["train_gs"]
    if args.gs_iterations:
        gs_params["iterations"] = args.gs_iterations
    rows: list[dict] = []
    bench_room(args.work, args.scene_options, gs_params, rows, {**base_row("room", args.scene_options)})
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
