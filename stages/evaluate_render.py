"""Render evaluation stage: PSNR / SSIM of the Gaussians on held-out views, a tidy table and a preview image."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import torch

from stages.lib.atomic import atomic_path
from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.gaussians import load_gaussians
from stages.lib.gs_trainer import render_params
from stages.lib.image_metrics import psnr, ssim
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import read_store, write_store
from stages.lib.tables import write_csv_atomic


def mean_colour_psnr(mean_colour: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR of predicting every pixel as the mean train colour: the floor any model must beat."""
    return float(psnr(mean_colour.expand_as(target), target))


def evaluate_test_views(scene: SceneData, params: dict[str, torch.Tensor], sh_degree: int, device: torch.device,
                        num_previews: int = 4,
                        rasterize_mode: str = "classic") -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Per-test-view PSNR / SSIM / mean-colour baseline, and ground-truth-over-render preview strips; rendered in
    the ``rasterize_mode`` the Gaussians were trained with."""
    test_ids = np.where(scene.is_test)[0]
    bg = torch.tensor(scene.background, dtype=torch.float32, device=device)[None]
    mean_colour = torch.from_numpy(scene.images[~scene.is_test].reshape(-1, 3).mean(0) / 255.0).float()
    rows, previews = [], []
    with torch.no_grad():
        for i in test_ids:
            viewmat = torch.from_numpy(scene.world_to_camera[i:i + 1]).float().to(device)
            K = torch.from_numpy(scene.intrinsics[i:i + 1]).float().to(device)
            out, _, _ = render_params(params, viewmat, K, scene.width, scene.height, sh_degree, bg,
                                      rasterize_mode=rasterize_mode)
            pred = out[0].clamp(0, 1).cpu()
            target = torch.from_numpy(scene.images[i]).float() / 255.0
            rows.append({"view": int(i), "psnr": float(psnr(pred, target)), "ssim": float(ssim(pred, target)),
                         "baseline_psnr": mean_colour_psnr(mean_colour, target)})
            if len(previews) < num_previews:
                previews.append(np.concatenate([scene.images[i], (pred.numpy() * 255).astype(np.uint8)], axis=0))
    return pd.DataFrame(rows), previews


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    scene = load_scene(args.scene)
    params, attrs = load_gaussians(args.gaussians, device)
    table, previews = evaluate_test_views(scene, params, int(attrs["sh_degree"]), device,
                                          rasterize_mode=attrs.get("rasterize_mode", "classic"))
    with write_store("render_metrics", args.out, "evaluate_render", args.params,
                     {"scene": args.scene, "gaussians": args.gaussians}) as w:
        w.write("view", table["view"].to_numpy(np.int32))
        w.write("psnr", table["psnr"].to_numpy(np.float32))
        w.write("ssim", table["ssim"].to_numpy(np.float32))
        w.attrs.update(mean_psnr=float(table["psnr"].mean()), mean_ssim=float(table["ssim"].mean()))
    scene_attrs = read_store("scene", args.scene).attrs
    table.insert(0, "variant", args.variant)
    table.insert(0, "scene", scene_attrs["scene"])
    table.insert(0, "dataset", scene_attrs["dataset"])
    table["num_gaussians"] = int(params["means"].shape[0])
    table["train_seconds"] = float(attrs.get("train_seconds", float("nan")))
    write_csv_atomic(table, args.table)
    if args.preview:
        save_preview(previews, args.preview)


def save_preview(previews: list[np.ndarray], path: str) -> None:
    """The preview strips side by side as one PNG, written atomically (``stages.lib.atomic``)."""
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(np.concatenate(previews, axis=1)).save(tmp, format="PNG")


def parser() -> argparse.ArgumentParser:
    p = stage_parser("evaluate_render", __doc__)
    p.add_argument("--scene", required=True)
    p.add_argument("--gaussians", required=True)
    p.add_argument("--variant", required=True, help="train_gs variant name, recorded in the table")
    p.add_argument("--out", required=True, help="output render_metrics store (.zarr)")
    p.add_argument("--table", required=True, help="tidy per-view table (.csv)")
    p.add_argument("--preview", default=None, help="PNG: ground truth (top) over render (bottom) for test views")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
