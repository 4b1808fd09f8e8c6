"""Benchmark of the train_gs stage: test-view PSNR/SSIM, iterations/s, peak GPU memory, wall time.

Example (GPU): python -m bench.train_gs --label synthetic150 --reader synthetic \
    --options '{"num_views": 150, "width": 512, "height": 512, "device": "cuda"}' \
    --params '{"iterations": 15000}' --eval-at 7000,15000 --out bench/results/train_gs.csv
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import time
from pathlib import Path

import pandas as pd
import torch

from stages.evaluate_render import evaluate_test_views
from stages.ingest import load_source
from stages.lib.gs_trainer import (
    GaussianTrainer,
    GSTrainConfig,
    render_params,
    train_rgb,
)


def backend_parity(scene, params, sh_degree: int, device: torch.device) -> float:
    """Max abs difference between gsplat's CUDA rasteriser and the CPU path on one test view."""
    i = int(scene.is_test.nonzero()[0][0])
    view = torch.from_numpy(scene.world_to_camera[i:i + 1]).float()
    K = torch.from_numpy(scene.intrinsics[i:i + 1]).float()
    with torch.no_grad():
        gpu, _, _ = render_params(params, view.to(device), K.to(device), scene.width, scene.height, sh_degree)
        cpu, _, _ = render_params({k: v.cpu() for k, v in params.items()}, view, K, scene.width, scene.height,
                                  sh_degree, backend="torch")
    return float((gpu.cpu() - cpu).abs().max())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--label", required=True)
    p.add_argument("--reader", required=True)
    p.add_argument("--path", default=None)
    p.add_argument("--options", type=json.loads, default={})
    p.add_argument("--params", type=json.loads, default={})
    p.add_argument("--eval-at", default="", help="comma-separated iterations at which to evaluate")
    p.add_argument("--parity", action="store_true", help="also compare the CUDA and CPU renderers")
    p.add_argument("--out", required=True, help="CSV to append rows to")
    args = p.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    scene = load_source(args.reader, args.path, args.options)
    load_s = time.perf_counter() - t0
    cfg = GSTrainConfig.from_dict(args.params)
    eval_at = {int(x) for x in args.eval_at.split(",") if x} | {cfg.iterations}
    rows: list[dict] = []
    clock = {"train": 0.0, "last": time.perf_counter()}

    def on_step(step: int, trainer: GaussianTrainer) -> None:
        if step not in eval_at:
            return
        if device.type == "cuda":
            torch.cuda.synchronize()
        clock["train"] += time.perf_counter() - clock["last"]
        table, _ = evaluate_test_views(scene, trainer.params, cfg.sh_degree, device, num_previews=0)
        rows.append({
            "label": args.label, "iterations": step, "views": scene.num_views,
            "test_views": int(scene.is_test.sum()), "width": scene.width, "height": scene.height,
            "psnr": table["psnr"].mean(), "ssim": table["ssim"].mean(),
            "baseline_psnr": table["baseline_psnr"].mean(), "train_seconds": clock["train"],
            "iters_per_second": step / clock["train"], "num_gaussians": len(trainer.params["means"]),
            "peak_gpu_mem_gib": torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0,
            "scene_load_seconds": load_s,
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu",
            "torch": torch.__version__, "params": json.dumps(args.params, sort_keys=True),
            "date": dt.date.today().isoformat(),
        })
        print(json.dumps(rows[-1]), flush=True)
        clock["last"] = time.perf_counter()

    params = train_rgb(scene, cfg, device, on_step=on_step, progress=False)
    if args.parity and device.type == "cuda":
        rows[-1]["cuda_vs_cpu_max_abs_diff"] = backend_parity(scene, params, cfg.sh_degree, device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame.to_csv(out, mode="a", header=not out.exists(), index=False)
    print(frame.to_string())


if __name__ == "__main__":
    main()
