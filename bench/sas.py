"""Benchmark of SAS's 2D fusion (recipe ``sas_2d_fusion_gpu`` in config.yaml; the distilled 3D network:
bench/sas3d.py) on a synthetic room with oracle 2D models.

For each per-class confusion level (``clean``: neither oracle model confuses anything; ``moderate``: the recipe's
confusion rates x 0.6; ``strong``: the recipe's rates) it runs the capability stage (oracle source) and
evaluate_semantic once per Table 3 row (model A alone, model B alone, Add = plain averaging, Linear, capability-guided)
in process; appends one CSV row per (level, stage) with wall time and peak memory (GPU where one is used, else the
process's peak RSS) and one ``method_total`` row per (level, fusion) with the 3D mIoU / mAcc (ScanNet 19 classes) and
the test-view query mIoU. SAS's 2D side needs no Gaussians: the scan's points and the scene depth are used.

``--diffusion-speed full`` also times the Stable Diffusion source with random weights of SD 1.5's architecture
(512x512, 50 DDIM steps, SAM ViT-H point prompts; two classes, one image each): a speed figure only.

GPU machine (150 views at 512x512, 100k points):
  python -m bench.sas --out bench/results/sas.csv --diffusion-speed full
CPU smoke test:  python -m bench.sas --out /tmp/sas.csv --scene-options '{"num_views": 10, "width": 40,
  "height": 30, "num_points": 1500}' --levels clean strong --diffusion-speed tiny
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import time
from pathlib import Path

import torch

from bench.common import GPU_ROOM, REPO, append_rows, base_row, load_config, recipe_params, save_partial, timed
from stages import capability, evaluate_semantic
from stages.ingest import load_source
from stages.lib.store import read_store

LEVEL_SCALE = {"clean": 0.0, "moderate": 0.6, "strong": 1.0}
ROWS = {"dense_only": {"fusion": "single", "model": "dense"}, "mask_only": {"fusion": "single", "model": "mask"},
        "add": {"fusion": "add"}, "linear": {"fusion": "linear"}, "capability": {"fusion": "capability"}}


def scaled_models(models: list[dict], scale: float) -> list[dict]:
    """The recipe's oracle models with every confusion rate multiplied by ``scale`` (0: no confusion)."""
    out = copy.deepcopy(models)
    for m in out:
        m["confuse"] = {k: float(v) * scale for k, v in m.get("confuse", {}).items()}
    return out


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def run_level(level: str, params: dict[str, dict], scene: Path, work: Path, rows: list[dict], base: dict) -> None:
    d = work / level
    d.mkdir(parents=True, exist_ok=True)
    base = {**base, "level": level}
    cap = dict(params["capability"], models=scaled_models(params["capability"]["models"], LEVEL_SCALE[level]))
    cap_path = str(d / "capability.zarr")
    timed("capability", capability.main, capability.parser,
          ["--scene", str(scene), "--out", cap_path, "--params", json.dumps(cap)], rows, base)
    rows[-1]["peak_rss_gib"] = peak_rss_gib()
    for row, fusion in ROWS.items():
        p = {**{k: v for k, v in params["evaluate_semantic"].items() if k not in ("fusion", "model")}, **fusion}
        out = d / f"semantic_{row}"
        timed(f"evaluate_semantic[{row}]", evaluate_semantic.main, evaluate_semantic.parser,
              ["--scene", str(scene), "--capability", cap_path, "--out", f"{out}.zarr", "--table", f"{out}.csv",
               "--params", json.dumps(p)], rows, base)
        rows[-1]["peak_rss_gib"] = peak_rss_gib()
        attrs = read_store("semantic_metrics", f"{out}.zarr").attrs
        rows.append({**base, "stage": "method_total", "fusion": row, "miou_3d": attrs["miou_3d"],
                     "macc_3d": attrs["macc_3d"], "miou_2d": attrs["miou_2d"]})
        print(json.dumps(rows[-1]), flush=True)


def diffusion_speed(size: str, scene: Path, work: Path, rows: list[dict], base: dict) -> None:
    """Seconds per synthesised image of the diffusion source with random weights (speed only)."""
    full = size == "full"
    options = {"images_per_class": 1, "width": 512 if full else 32, "height": 512 if full else 32,
               "steps": 50 if full else 2, "diffusion": {"random_weights": True, "random_size": size},
               "sam": {"model": "sam_vit_h" if full else "sam_vit_b", "random_weights": True}}
    models = [{"name": "dense", "confuse": {"chair": 1.0}, "into": {"chair": "sofa"}}, {"name": "mask"}]
    cap = {"source": "diffusion", "models": models, "vocabulary": ["chair", "sofa"], "options": options}
    out = work / f"capability_diffusion_{size}.zarr"
    timed("capability[diffusion, random weights]", capability.main, capability.parser,
          ["--scene", str(scene), "--out", str(out), "--params", json.dumps(cap)], rows,
          {**base, "level": f"random {size}"})
    rows[-1].update(seconds_per_image=rows[-1]["seconds"] / 2, peak_rss_gib=peak_rss_gib())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=REPO / "bench/results/sas.csv")
    p.add_argument("--work", type=Path, default=Path("/tmp/ovgs_bench_sas"))
    p.add_argument("--method", default="sas_2d_fusion_gpu", help="SAS 2D-fusion recipe in config.yaml")
    p.add_argument("--scene-options", type=json.loads, default={}, help="synthetic room options (JSON)")
    p.add_argument("--levels", nargs="+", default=list(LEVEL_SCALE), choices=list(LEVEL_SCALE))
    p.add_argument("--diffusion-speed", choices=["tiny", "full"], default=None,
                   help="also time the Stable Diffusion source with random weights (speed figure only)")
    args = p.parse_args()
    options = {**GPU_ROOM, **args.scene_options}
    if not torch.cuda.is_available():
        options["device"] = "cpu"
    params = recipe_params(load_config(), args.method)
    base = base_row(args.method, options)
    rows: list[dict] = []
    args.work.mkdir(parents=True, exist_ok=True)
    scene = args.work / "scene.zarr"
    t0 = time.perf_counter()
    load_source("synthetic", None, options).write(scene, "ingest", options, "synthetic", "bench_room", "synthetic")
    rows.append({**base, "level": "", "stage": "ingest", "seconds": time.perf_counter() - t0})
    for level in args.levels:
        run_level(level, params, scene, args.work, rows, base)
        save_partial(rows, args.out)
    if args.diffusion_speed:
        diffusion_speed(args.diffusion_speed, scene, args.work, rows, base)
    table = append_rows(rows, args.out)
    totals = table[table["stage"] == "method_total"]
    print(totals.pivot_table(index="fusion", columns="level", values="miou_3d").round(3).to_string())


if __name__ == "__main__":
    main()
