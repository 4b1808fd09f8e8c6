"""3DGS training stage: RGB Gaussian splatting (gsplat on CUDA, the PyTorch path on CPU) into a ``gaussians`` store."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from stages.lib.checkpoints import checkpoint_path, run_fingerprint
from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.gaussians import export_ply, save_gaussians
from stages.lib.gs_trainer import GSTrainConfig, train_rgb
from stages.lib.gsplat_build import build_cache, ensure_built
from stages.lib.scene import load_scene
from stages.lib.stage_cost import peak_memory

log = logging.getLogger(__name__)


def main(args: argparse.Namespace) -> None:
    cfg = GSTrainConfig.from_dict(args.params)
    device = pick_device(args.device)
    cfg.check_device(device)
    log.info("%s%s", build_cache().describe(), "" if device.type == "cuda" else " (not used on CPU)")
    if device.type == "cuda":
        ensure_built(log)
    scene = load_scene(args.scene)
    out = Path(args.out)
    fingerprint = run_fingerprint(args.params, {"scene": args.scene})
    ckpt = checkpoint_path(out)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    params = train_rgb(scene, cfg, device, checkpoint=ckpt, fingerprint=fingerprint)
    seconds = time.perf_counter() - start
    log.info("trained %d Gaussians in %.1f s", params["means"].shape[0], seconds)
    save_gaussians(out, params, "train_gs", args.params, {"scene": args.scene},
                   {"sh_degree": cfg.sh_degree, "background": list(scene.background), "iterations": cfg.iterations,
                    "rasterize_mode": cfg.rasterize_mode,
                    "train_seconds": seconds, **peak_memory(), "device": str(device)})
    if args.ply:
        export_ply(args.ply, params)
    ckpt.unlink(missing_ok=True)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("train_gs", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--out", required=True, help="output gaussians store (.zarr)")
    p.add_argument("--ply", default=None, help="also export the standard 3DGS PLY here")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
