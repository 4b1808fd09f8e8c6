"""SAS 3D distillation sweep on CPU: 3D mIoU (ScanNet 19 classes) against epochs for schedule variants on one room.

The room (default: the demo room of config.yaml's scenes table), the oracle capability (``--level``: per-class
confusion as bench/sas.py) and the capability-guided 2D fusion (the distillation targets) are computed once; every
run is the recipe's distill variant (``--method``, default the demo's ``sas``) with the run's overrides (any
``DistillSchedule`` key, ``graph`` for the over-segmentation), trained in process with the point features scored
every ``--every`` epochs. Also recorded: the 2D fusion's mIoU on the same points and the bounds of the targets
themselves (the fused features, their superpoint means F^2D_SP, each pooled over the run's voxels). One CSV row per
scored epoch (appended), naming the device, the room's options, the crop and the run's settings; seconds per epoch
are training only (scoring left out).

``--crop`` trains and scores only the points inside a box, so that a large room's density fits a CPU schedule: the
crop's points keep their fused targets and superpoint ids from the whole room (both are per-point results of the
room). ``--bounds-only`` writes the bounds without training. ``--reuse`` keeps the work folder's scene and
capability stores when they were written with the same options.

  python -m bench.sas3d_sweep --out /tmp/sweep.csv --runs '[{"epochs": 60}, {"epochs": 150, "tesd_epochs": 45}]'
  python -m bench.sas3d_sweep --method sas_gpu --scene-options '{"num_views": 150, "width": 512, "height": 512,
    "num_points": 100000}' --crop '[[-0.7, -1, -0.7], [0.7, 3, 0.7]]' --reuse --out /tmp/gpu_room_crop.csv \\
    --runs '[{"voxel_size": 0.02}]'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from bench.common import append_rows, base_row, load_config, recipe_params
from bench.sas import LEVEL_SCALE, scaled_models
from stages import capability
from stages.distill import SCHEDULE_KEYS, DistillConfig, scan_superpoints
from stages.ingest import load_source
from stages.lib.cli import config_from_params, run_stage
from stages.lib.semantic_metrics import miou_macc
from stages.lib.sparse_conv import get_backend
from stages.lib.sparse_conv.voxels import voxelise
from stages.lib.store import StoreError, read_store
from stages.methods.sas.distillation import superpoint_targets
from stages.methods.sas.evaluation import SasEvalConfig, fused_scene_features, subset_confusions
from stages.methods.sas.superpoints import dense_ids
from stages.methods.sas.training import DistillSchedule, DistillTargets, train_distillation


def miou_19(features: np.ndarray, semantic: np.ndarray, categories: list[str], text: np.ndarray,
            vocabulary: list[str]) -> float:
    """3D mIoU (%) over the 19 ScanNet classes of per-point features (every point predicted)."""
    confusions = subset_confusions(features.astype(np.float64), np.ones(len(features), bool), text, vocabulary,
                                   semantic, categories)
    return 100.0 * miou_macc(confusions[19])[0]


def box_mask(xyz: np.ndarray, box: list[list[float]] | None) -> np.ndarray:
    """[P] whether each point lies in the axis-aligned box [[x0, y0, z0], [x1, y1, z1]] (faces included); every
    point without a box."""
    if box is None:
        return np.ones(len(xyz), bool)
    lo, hi = np.asarray(box, dtype=np.float64)
    return ((xyz >= lo) & (xyz <= hi)).all(1)


def written_with(path: Path, kind: str, params: dict[str, Any]) -> bool:
    """Whether the store at ``path`` exists, is complete and was written with ``params``."""
    try:
        recorded = read_store(kind, path).attrs["provenance"]["params"]
    except (StoreError, KeyError, FileNotFoundError):
        return False
    return recorded == json.loads(json.dumps(params))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/ovgs_bench_sas3d_sweep"))
    p.add_argument("--scene-options", type=json.loads, default=None, help="synthetic room options (default: demo)")
    p.add_argument("--method", default="sas", help="SAS recipe whose capability and distill variants are used")
    p.add_argument("--level", default="strong", choices=list(LEVEL_SCALE), help="oracle per-class confusion")
    p.add_argument("--crop", type=json.loads, default=None, help="[[x0, y0, z0], [x1, y1, z1]]: train and score "
                   "only the points in this box")
    p.add_argument("--reuse", action="store_true", help="keep the scene and capability stores written with these "
                   "options")
    p.add_argument("--runs", type=json.loads, default=[{}], help="JSON list of distill overrides, one per run")
    p.add_argument("--every", type=int, default=10, help="score every this many epochs (and the last)")
    p.add_argument("--bounds-only", action="store_true", help="one row per run with its bounds (epoch 0), no training")
    args = p.parse_args()
    config = load_config()
    options = {**(args.scene_options or config["scenes"][0]["options"]), "device": "cpu"}
    params = recipe_params(config, args.method)
    cparams = dict(params["capability"],
                   models=scaled_models(params["capability"]["models"], LEVEL_SCALE[args.level]))
    args.work.mkdir(parents=True, exist_ok=True)
    scene_path, cap_path = args.work / "scene.zarr", args.work / "capability.zarr"
    if not (args.reuse and written_with(scene_path, "scene", options)):
        load_source("synthetic", None, options).write(scene_path, "ingest", options, "synthetic", "sweep",
                                                      "synthetic")
    if not (args.reuse and written_with(scene_path, "scene", options) and written_with(cap_path, "capability",
                                                                                     cparams)):
        run_stage(capability.main, capability.parser(),
                  ["--scene", str(scene_path), "--out", str(cap_path), "--params", json.dumps(cparams)])
    scene = read_store("scene", scene_path)
    targets_cfg = config_from_params(SasEvalConfig, params["distill"].get("targets", {}), "distill targets")
    points_2d = fused_scene_features(scene, read_store("capability", cap_path), targets_cfg)
    xyz = scene.load("points_xyz")
    keep = box_mask(xyz, args.crop)
    fused, seen, text, vocabulary = points_2d.features[keep], points_2d.seen[keep], points_2d.text, points_2d.vocabulary
    semantic, categories = scene.load("points_semantic")[keep], list(scene.attrs["categories"])
    points = torch.from_numpy(xyz[keep]).float()

    def miou(features: np.ndarray) -> float:
        return miou_19(features, semantic, categories, text, vocabulary)

    base = {**base_row(args.method, options), "room": json.dumps(options, sort_keys=True), "level": args.level,
            "crop": json.dumps(args.crop), "points": int(keep.sum()), "fusion_miou": miou(fused)}
    print(f"2D fusion on {base['points']} points: {base['fusion_miou']:.1f}", flush=True)
    for run in args.runs:
        merged = {**params["distill"], **run}
        cfg = config_from_params(DistillConfig, {k: v for k, v in merged.items() if k not in SCHEDULE_KEYS}, "distill")
        schedule = config_from_params(DistillSchedule, {k: v for k, v in merged.items() if k in SCHEDULE_KEYS})
        segment = dense_ids(scan_superpoints(scene, cfg)[0][keep])
        targets = DistillTargets(points, torch.from_numpy(fused).float(), torch.from_numpy(seen),
                                 torch.from_numpy(segment), torch.from_numpy(text).float())
        _, sp_point, _ = superpoint_targets(targets.fused, targets.segment, targets.num_segments, targets.seen)
        vox = voxelise(points.double(), schedule.voxel_size)
        settings = {"run": json.dumps(run, sort_keys=True), "schedule": schedule.name,
                    **{k: getattr(schedule, k) for k in ("voxel_size", "steps_per_epoch", "epochs", "tesd_epochs",
                                                          "width", "lr", "seed")},
                    "superpoints": targets.num_segments, "voxels": len(vox.coords),
                    "bound_fused": miou(vox.devoxelise(vox.pool(targets.fused.double())).numpy()),
                    "bound_sp": miou(vox.devoxelise(vox.pool(sp_point.double())).numpy())}
        if args.bounds_only:
            append_rows([{**base, **settings, "epoch": 0, "steps": 0}], args.out)
            continue
        run_rows: list[dict] = []
        scoring = [0.0]

        def score(epoch: int, features, settings=settings, schedule=schedule, run_rows=run_rows,
                  scoring=scoring) -> None:
            if (epoch + 1) % args.every == 0 or epoch + 1 == schedule.epochs:
                t0 = time.perf_counter()
                run_rows.append({**base, **settings, "epoch": epoch + 1,
                                 "steps": (epoch + 1) * schedule.steps_per_epoch, "miou_3d": miou(features())})
                scoring[0] += time.perf_counter() - t0
                print(json.dumps(run_rows[-1]), flush=True)

        result = train_distillation(targets, get_backend(cfg.backend), schedule, torch.device("cpu"), monitor=score)
        train_seconds = result.seconds_per_epoch * schedule.epochs - scoring[0]
        append_rows([{**r, "seconds_per_epoch": train_seconds / schedule.epochs} for r in run_rows], args.out)


if __name__ == "__main__":
    main()
