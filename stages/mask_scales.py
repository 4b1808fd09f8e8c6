"""Mask-scales stage: the 3D scale of every 2D mask (SAGA Eq. 2) from the rendered depth of the trained Gaussians,
normalised per scene to [0, 1] (``stages.methods.saga.scales``), in a ``mask_scales`` store aligned with the mask table.

Parameters (JSON): ``min_alpha`` (0.5: pixels whose rendered opacity is below it have no depth), ``min_points``
(1: masks with fewer back-projected points get no scale, NaN), ``num_knots`` (101 quantile knots of the normaliser).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.mask_store import load_masks
from stages.lib.rendered_depth import Camera, load_geometry, rendered_depth
from stages.lib.scene import load_scene
from stages.lib.store import StoreError, write_store
from stages.methods.saga.scales import NUM_KNOTS, normalise_scales, scale_knots, view_mask_scales

log = logging.getLogger(__name__)


@dataclass
class MaskScalesConfig:
    """The stage's parameters (see the module docstring)."""

    min_alpha: float = 0.5
    min_points: int = 1
    num_knots: int = NUM_KNOTS


def main(args: argparse.Namespace) -> None:
    cfg = config_from_params(MaskScalesConfig, args.params, "mask_scales")
    device = pick_device(args.device)
    scene = load_scene(args.scene)
    masks = load_masks(args.masks, (scene.num_views, scene.height, scene.width))
    geometry = load_geometry(args.gaussians, device)
    metric = np.full(masks.num_masks, np.nan)
    counts = np.zeros(masks.num_masks, dtype=np.int64)
    for view in tqdm(range(scene.num_views), desc="mask scales", unit="view", mininterval=5):
        cam = Camera(scene.world_to_camera[view], scene.intrinsics[view], scene.width, scene.height)
        depth = rendered_depth(geometry, cam, cfg.min_alpha).cpu().numpy()
        for level in range(len(masks.levels)):
            rows, pixels = masks.masks(view, level)
            if len(rows):
                metric[rows], counts[rows] = view_mask_scales(depth, scene.intrinsics[view],
                                                              scene.world_to_camera[view], pixels, cfg.min_points)
    try:
        knots = scale_knots(metric, cfg.num_knots)
    except ValueError as exc:
        raise StoreError(f"{args.masks}: {exc}; are the Gaussians {args.gaussians} trained on this scene?") from exc
    normalised = normalise_scales(metric, knots)
    with write_store("mask_scales", args.out, "mask_scales", args.params,
                     {"scene": args.scene, "gaussians": args.gaussians, "masks": args.masks}) as w:
        w.write("mask_scale", normalised.astype(np.float32))
        w.write("mask_scale_metric", metric.astype(np.float32))
        w.write("mask_depth_points", counts.astype(np.int32))
        w.write("scale_knots", knots.astype(np.float32))
        w.attrs.update(normalisation="empirical_cdf", min_alpha=cfg.min_alpha, min_points=cfg.min_points,
                       num_without_scale=int(np.isnan(metric).sum()))
    log.info("scales of %d masks (%d without depth); metric median %.3f", len(metric), int(np.isnan(metric).sum()),
             float(np.nanmedian(metric)))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("mask_scales", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--gaussians", required=True, help="input gaussians store (RGB-trained; its depth is rendered)")
    p.add_argument("--masks", required=True, help="input masks store")
    p.add_argument("--out", required=True, help="output mask_scales store (.zarr)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
