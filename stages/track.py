"""Track stage: a cross-view track id for every mask, by SAM2 propagation of the first frame's masks or by the oracle.

Parameters (``--params`` JSON):
  source: "sam2" | "oracle"; levels: masks levels to track (default: all of the masks store)
  min_iou: 0.5 (CCL-LGS); reseed_after: 0 (off; see stages.lib.tracking); reseed_min_area: 16
  sam2: {model: weights registry name, random_weights: false, image_size: null (the model's 1024)}
  corruption: TrackCorruption fields (oracle only); seed.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

import numpy as np

from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.mask_levels import LevelFilter, select_levels
from stages.lib.mask_store import MaskSet, load_masks
from stages.lib.oracle.masks import view_clean_masks
from stages.lib.oracle.pieces import instance_axes, require_ground_truth
from stages.lib.oracle.tracks import TrackCorruption, oracle_propagator
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import write_store
from stages.lib.tracking import Propagator, TrackConfig, track_label_maps
from stages.lib.weights import ModelChoice

log = logging.getLogger(__name__)


def clean_level_maps(scene: SceneData, masks: MaskSet, levels: list[str]) -> dict[str, np.ndarray]:
    """Uncorrupted piece-id maps [V,H,W] of masks levels, built with the masks store's own level rules (each view's
    pieces computed once for all the levels)."""
    require_ground_truth(scene)
    mparams = masks.attrs["provenance"]["params"]
    members = {level: mparams.get("levels", {"whole": ["whole"]})[level] for level in levels}
    needed = list(dict.fromkeys(lv for level in levels for lv in members[level]))
    rule = LevelFilter(**mparams.get("filter", {}))
    axes = instance_axes(scene)
    out = {level: np.full((scene.num_views, scene.height, scene.width), -1, np.int32) for level in levels}
    for view in range(scene.num_views):
        clean = view_clean_masks(scene, view, needed, axes)
        for level in levels:
            pieces = [m for lv in members[level] for m in clean[lv]]
            for m in sorted(select_levels(pieces, {level: members[level]}, rule)[0], key=lambda m: m.area,
                            reverse=True):
                m.paint(out[level][view], m.source_id)
    return out


def sam2_model(params: dict[str, Any]) -> ModelChoice:
    return ModelChoice.from_params(params.get("sam2", {}), "sam2.1_hiera_large")


def sam2_propagator(scene: SceneData, params: dict[str, Any], weights_dir: str | None, device) -> Propagator:
    """SAM2 video propagation over the scene's views in order."""
    from stages.lib.models.sam2_tracker import build_sam2_video, propagate_masks
    cfg = params.get("sam2", {})
    model = sam2_model(params)
    predictor = build_sam2_video(model.arch, model.checkpoint(weights_dir), device, random_weights=model.random_weights,
                                 image_size=cfg.get("image_size"))

    def propagate(seed_frame: int, seeds: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full((scene.num_views, scene.height, scene.width), -1, np.int32)
        out[seed_frame:] = propagate_masks(predictor, scene.images[seed_frame:], seeds)
        return out

    return propagate


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    scene = load_scene(args.scene)
    masks = load_masks(args.masks, (scene.num_views, scene.height, scene.width))
    levels = params.get("levels") or masks.levels
    cfg = TrackConfig(**{k: params[k] for k in ("min_iou", "reseed_after", "reseed_min_area") if k in params})
    source = params.get("source", "oracle")
    rng = np.random.default_rng(params.get("seed", 0))
    if source not in ("oracle", "sam2"):
        raise ValueError(f"track source must be 'sam2' or 'oracle', got {source!r}")
    sam2 = sam2_propagator(scene, params, args.weights_dir, pick_device(args.device)) if source == "sam2" else None
    track_id = np.full(masks.num_masks, -1, np.int32)
    propagated = np.full(masks.labels.shape, -1, np.int32)
    offset = 0
    clean = clean_level_maps(scene, masks, levels) if source == "oracle" else {}
    for level in levels:
        li = masks.level_index(level)
        propagate = sam2 or oracle_propagator(clean[level], TrackCorruption(**params.get("corruption", {})), rng)
        assignments, prop = track_label_maps(masks.labels[:, li], propagate, cfg, desc=f"track {level}")
        for view, assign in enumerate(assignments):
            rows = masks.rows(view, li)
            ids = np.array([assign.get(int(m), -1) for m in masks.table["mask_id"][rows]], np.int32)
            track_id[rows] = np.where(ids >= 0, ids + offset, -1)  # track ids unique across levels
        propagated[:, li] = np.where(prop >= 0, prop + offset, -1)
        offset = int(max(offset, track_id.max(initial=-1) + 1, propagated.max(initial=-1) + 1))  # no masks: none
    with write_store("tracks", args.out, "track", params, {"scene": args.scene, "masks": args.masks}) as w:
        w.write("track_id", track_id)
        w.write("propagated", propagated)
        if source == "sam2":
            w.attrs.update(sam2_model(params).attrs())
        w.attrs.update(source=source, oracle=source == "oracle", num_tracks=int(np.unique(track_id[track_id >= 0]).size),
                       levels=list(levels), matched_fraction=float((track_id >= 0).mean()) if track_id.size else 0.0)
    log.info("tracked %d of %d masks into %d tracks", int((track_id >= 0).sum()), masks.num_masks,
             int(np.unique(track_id[track_id >= 0]).size))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("track", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--masks", required=True, help="input masks store")
    p.add_argument("--out", required=True, help="output tracks store (.zarr)")
    p.add_argument("--weights-dir", default=None, help="model checkpoints (default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
