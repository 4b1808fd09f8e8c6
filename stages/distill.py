"""Distill stage (SAS Sec. 3.4-3.5): a sparse-convolution MinkUNet18A trained on the scan's points from SAS's fused
2D point features (superpoint distillation, Eq. 10, then temporal-ensembling self-distillation, Eq. 11-13), written
as per-point features in a ``distilled_points`` store, with the text features of the vocabulary and of the long-tail
K-class vocabulary (``stages.lib.vocabularies``) from the same shared text encoder.

Inputs: the scene (points, depth and ground truth for the oracle 2D models), the capability store and, for a scene
without depth, the RGB Gaussians (``gaussians``, a ``train_gs`` store): the network is then trained on the Gaussian
centres, the targets fused with their rendered depth (``stages.methods.sas.points``) and the superpoints are the
graph's over the centres. The fused 2D targets are computed as the ``sas`` evaluation computes its 2D-fusion row
(``targets``: its parameters, e.g. ``{fusion: capability, tau: 0.1}``). Parameters: ``backend`` (``auto`` = the fastest sparse-conv backend that imports
here: minkowski, spconv, torch; recorded in the store), ``superpoints`` (``auto``: the scene's ``points_segment``
where the scan ships one, else ``graph``: graph-based over-segmentation, parameters under ``graph``), and the
training schedule (``stages.methods.sas.training.DistillSchedule``: distillation, epochs, tesd_epochs,
steps_per_epoch, lr, lr_end, alpha, temperature, voxel_size, width, augment, scale_jitter, seed).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field, fields
from typing import Any, Literal

import numpy as np
import torch

from stages.lib.cli import config_from_params, pick_device, run_stage, stage_parser
from stages.lib.sparse_conv import get_backend
from stages.lib.stage_cost import peak_memory
from stages.lib.store import Store, StoreError, read_store, write_store
from stages.lib.vocabularies import LONG_TAIL_NAMES
from stages.methods.sas.evaluation import SasEvalConfig, fused_scene_features
from stages.methods.sas.models2d import ModelContext
from stages.methods.sas.points import GAUSSIANS, SCAN, FusionPoints, fusion_points, scan_points
from stages.methods.sas.superpoints import GraphSegmentation, dense_ids, graph_segments
from stages.methods.sas.training import LOSSES, DistillSchedule, DistillTargets, train_distillation

log = logging.getLogger(__name__)
SCHEDULE_KEYS = {f.name for f in fields(DistillSchedule)}


@dataclass
class DistillConfig:
    """The stage's own parameters (the schedule's are the other keys; see the module docstring)."""

    backend: str = "auto"
    superpoints: Literal["auto", "scene", "graph"] = "auto"
    graph: dict[str, Any] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)


def scan_superpoints(scene: Store, cfg: DistillConfig, points: FusionPoints | None = None) -> tuple[np.ndarray, str]:
    """Superpoint id [P] (0..L-1) of every point (default: the scan's) and where it came from; the scan's
    ``points_segment`` belongs to its own points only."""
    points = scan_points(scene) if points is None else points
    on_scan = points.source == SCAN
    if cfg.superpoints in ("auto", "scene") and on_scan and "points_segment" in scene:
        return dense_ids(scene.load("points_segment")), "scene points_segment"
    if cfg.superpoints == "scene":
        raise StoreError(f"{scene.path}: superpoints 'scene' needs the scan's 'points_segment' array"
                         + ("" if on_scan else " and the scan's points (these targets are on Gaussian centres)"))
    graph = config_from_params(GraphSegmentation, cfg.graph, "distill graph")
    return graph_segments(points.xyz, graph), (f"graph (k {graph.neighbours}, threshold "
                                               f"{graph.threshold}, min size {graph.min_size})")


def main(args: argparse.Namespace) -> None:
    params = dict(args.params)
    cfg = config_from_params(DistillConfig, {k: v for k, v in params.items() if k not in SCHEDULE_KEYS}, "distill")
    schedule = config_from_params(DistillSchedule, {k: v for k, v in params.items() if k in SCHEDULE_KEYS})
    targets_cfg = config_from_params(SasEvalConfig, cfg.targets, "distill targets")
    backend = get_backend(cfg.backend)
    device = pick_device(args.device)
    scene, capability = read_store("scene", args.scene), read_store("capability", args.capability)
    points = fusion_points(scene, args.gaussians, device, targets_cfg.min_alpha)
    fused_points = fused_scene_features(scene, capability, targets_cfg, ModelContext(device, args.weights_dir),
                                        points)
    fused, seen, text, vocabulary = (fused_points.features, fused_points.seen, fused_points.text,
                                     fused_points.vocabulary)
    if not seen.any():
        raise StoreError(f"{args.scene}: no point is seen by a training view; nothing to distil from")
    segment, source = scan_superpoints(scene, cfg, points)
    log.info("superpoints: %d from %s over %d points", int(segment.max()) + 1, source, len(segment))
    targets = DistillTargets(torch.from_numpy(points.xyz).float(), torch.from_numpy(fused).float(),
                             torch.from_numpy(seen), torch.from_numpy(segment), torch.from_numpy(text).float())
    result = train_distillation(targets, backend, schedule, device)
    with write_store("distilled_points", args.out, "distill", args.params,
                     {"scene": args.scene, "capability": args.capability,
                      **({"gaussians": args.gaussians} if points.source == GAUSSIANS else {})}) as w:
        w.write("point_features", result.features.astype(np.float32))
        w.write("text_features", text.astype(np.float32))
        w.write("long_tail_text_features", fused_points.long_tail_text.astype(np.float32))
        w.write("superpoint", segment.astype(np.int32))
        w.write("losses", result.losses.astype(np.float32))
        w.attrs.update(backend=backend.name, device=str(device), schedule=schedule.name, vocabulary=vocabulary,
                       long_tail_vocabulary=LONG_TAIL_NAMES,
                       losses=list(LOSSES), voxel_size=schedule.voxel_size, superpoint_source=source,
                       num_superpoints=int(segment.max()) + 1, points_source=points.source,
                       min_alpha=targets_cfg.min_alpha, seconds_per_epoch=result.seconds_per_epoch,
                       points_per_second=result.points_per_second, seen_points=int(seen.sum()), **peak_memory())


def parser() -> argparse.ArgumentParser:
    p = stage_parser("distill", __doc__)
    p.add_argument("--scene", required=True, help="scene store (points; depth and ground truth for the oracle models)")
    p.add_argument("--capability", required=True, help="capability store (after: capability)")
    p.add_argument("--gaussians", default=None, help="RGB gaussians store (after: train_gs): its centres and rendered "
                   "depth replace the scan's points and the sensor depth when the scene has no depth")
    p.add_argument("--out", required=True, help="output distilled_points store (.zarr)")
    p.add_argument("--weights-dir", default=None, help="checkpoints of real 2D models fused into the targets "
                   "(default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
