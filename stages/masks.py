"""Masks stage: 2D masks per view at the levels a method needs, from SAM or from the ground-truth oracle.

Parameters (``--params`` JSON):
  source: "sam" | "oracle"
  levels: {output level: [SAM levels pooled into it]}, SAM levels being subpart / part / whole. Examples:
    LangSplat {subpart: [subpart], part: [part], whole: [whole]}; CCL-LGS {subpart+part: [subpart, part],
    whole+part: [whole, part]}; OpenInsGaussian {whole: [whole]}; SAGA {all: [subpart, part, whole]} with keep_all.
  keep_all: keep every mask in full (SAGA); otherwise redundant masks are removed per output level (filter).
  filter: LevelFilter fields (min_predicted_iou, min_stability, max_overlap, min_area).
  sam: {model: weights registry name, random_weights: false, tiny: false (random-weight tests: a shrunken SAM),
    points_per_side, points_per_batch, ...}.
  corruption: MaskCorruption fields (oracle only); seed.
  shuffle_ids: number every view's masks in a random order (oracle only; ``oracle_id_order``): what a per-image
    segmenter gives, ids that mean nothing across views (Proto-SaGa / Gaga's inconsistent masks).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any, Iterator

import numpy as np
from tqdm import tqdm

from stages.lib.cli import pick_device, run_stage, stage_parser
from stages.lib.mask_levels import LEVELS, LevelFilter, Mask, select_levels
from stages.lib.mask_store import write_masks
from stages.lib.oracle.masks import (
    MaskCorruption,
    PersistentErrors,
    corrupt_masks,
    oracle_id_order,
    view_clean_masks,
)
from stages.lib.oracle.pieces import instance_axes, require_ground_truth
from stages.lib.scene import SceneData, load_scene
from stages.lib.weights import ModelChoice

log = logging.getLogger(__name__)


def output_levels(params: dict[str, Any]) -> dict[str, list[str]]:
    """The output levels and the SAM levels each pools; checks the names."""
    levels = params.get("levels", {"whole": ["whole"]})
    for name, members in levels.items():
        bad = [m for m in members if m not in LEVELS]
        if bad or not members:
            raise ValueError(f"masks level {name!r}: members {members} must be non-empty and among {LEVELS}")
    return levels


def oracle_view_masks(scene: SceneData, params: dict[str, Any]) -> Iterator[list[Mask]]:
    """Ground-truth pieces of every SAM level the output levels use, corrupted per view."""
    require_ground_truth(scene)
    needed = sorted({m for members in output_levels(params).values() for m in members}, key=LEVELS.index)
    corruption = MaskCorruption(**params.get("corruption", {}))
    rng = np.random.default_rng(params.get("seed", 0))
    persistent = PersistentErrors(corruption, params.get("seed", 0)) if corruption.persistent else None
    axes = instance_axes(scene)
    for view in range(scene.num_views):
        clean = view_clean_masks(scene, view, needed, axes)
        yield [m for level in needed for m in corrupt_masks(clean[level], corruption, rng, persistent)]


def sam_model(params: dict[str, Any]) -> ModelChoice:
    return ModelChoice.from_params(params.get("sam", {}), "sam_vit_h")


def sam_view_masks(scene: SceneData, params: dict[str, Any], weights_dir: str | None, device) -> Iterator[list[Mask]]:
    """SAM masks of every view: level-resolved (three multimask outputs) or, with keep_all, automatic masks."""
    from stages.lib.models.sam_masks import (
        build_sam,
        generate_level_masks,
        generate_masks,
    )
    sam_cfg = {k: v for k, v in params.get("sam", {}).items() if k not in ("model", "random_weights", "tiny")}
    model = sam_model(params)
    sam = build_sam(model.arch, model.checkpoint(weights_dir), device, random_weights=model.random_weights,
                    tiny=bool(params.get("sam", {}).get("tiny", False)))
    generate = generate_masks if params.get("keep_all") else generate_level_masks
    for view in range(scene.num_views):
        yield [Mask(r.segmentation, r.predicted_iou, r.stability_score, r.level) for r in
               generate(sam, scene.images[view], sam_cfg)]


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    scene = load_scene(args.scene)
    levels = output_levels(params)
    keep_all = bool(params.get("keep_all", False))
    rule = LevelFilter(**params.get("filter", {}))
    source = params.get("source", "oracle")
    id_order = None
    if source == "oracle":
        raw = oracle_view_masks(scene, params)
        attrs = {"source": "oracle", "oracle": True, "corruption": params.get("corruption", {}),
                 "shuffle_ids": bool(params.get("shuffle_ids", False))}
        if params.get("shuffle_ids"):
            id_order = oracle_id_order(params.get("seed", 0))
    elif source == "sam":
        raw = sam_view_masks(scene, params, args.weights_dir, pick_device(args.device))
        attrs = {"source": "sam", "oracle": False, **sam_model(params).attrs()}
    else:
        raise ValueError(f"masks source must be 'sam' or 'oracle', got {source!r}")
    per_view = (select_levels(m, levels, rule, keep_all) for m in tqdm(raw, total=scene.num_views, desc="masks",
                                                                      unit="view", mininterval=5))
    write_masks(args.out, per_view, (scene.num_views, scene.height, scene.width), list(levels), params,
                {"scene": args.scene}, attrs, keep_all=keep_all, id_order=id_order)
    log.info("wrote %s (%s, levels %s)", args.out, source, list(levels))


def parser() -> argparse.ArgumentParser:
    p = stage_parser("masks", __doc__)
    p.add_argument("--scene", required=True, help="input scene store")
    p.add_argument("--out", required=True, help="output masks store (.zarr)")
    p.add_argument("--weights-dir", default=None, help="model checkpoints (default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
