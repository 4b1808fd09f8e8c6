"""SAS 3D distillation sweep on CPU: 3D mIoU (ScanNet 19 classes) against epochs for schedule variants on one room.

The room (default: the demo room of config.yaml's scenes table), the oracle capability and the capability-guided
2D fusion (the distillation targets) are computed once; every run is the ``sas_demo`` distill variant with the
run's overrides (any ``DistillSchedule`` key, ``graph`` for the over-segmentation), trained in process with the
point features scored every ``--every`` epochs. Also printed: the bounds of the targets themselves (the fused
features, their superpoint means F^2D_SP, each pooled over the run's voxels). One CSV row per scored epoch.

  python -m bench.sas3d_sweep --out /tmp/sweep.csv --runs '[{"epochs": 60}, {"epochs": 150, "tesd_epochs": 45}]'
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.common import load_config, recipe_params
from stages import capability
from stages.distill import SCHEDULE_KEYS, DistillConfig, scan_superpoints
from stages.ingest import load_source
from stages.lib.cli import config_from_params, run_stage
from stages.lib.semantic_metrics import miou_macc
from stages.lib.sparse_conv import get_backend
from stages.lib.sparse_conv.voxels import voxelise
from stages.lib.store import read_store
from stages.methods.sas.distillation import superpoint_targets
from stages.methods.sas.evaluation import SasEvalConfig, fused_scene_features, subset_confusions
from stages.methods.sas.training import DistillSchedule, DistillTargets, train_distillation


def miou_19(features: np.ndarray, scene, text: np.ndarray, vocabulary: list[str]) -> float:
    """3D mIoU (%) over the 19 ScanNet classes of per-point features (every point predicted)."""
    confusions = subset_confusions(features.astype(np.float64), np.ones(len(features), bool), text, vocabulary,
                                   scene.load("points_semantic"), list(scene.attrs["categories"]))
    return 100.0 * miou_macc(confusions[19])[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--work", type=Path, default=Path("/tmp/ovgs_bench_sas3d_sweep"))
    p.add_argument("--scene-options", type=json.loads, default=None, help="synthetic room options (default: demo)")
    p.add_argument("--runs", type=json.loads, default=[{}], help="JSON list of distill overrides, one per run")
    p.add_argument("--every", type=int, default=10, help="score every this many epochs (and the last)")
    args = p.parse_args()
    config = load_config()
    options = args.scene_options or config["scenes"][0]["options"]
    params = recipe_params(config, "sas")
    args.work.mkdir(parents=True, exist_ok=True)
    scene_path, cap_path = args.work / "scene.zarr", args.work / "capability.zarr"
    load_source("synthetic", None, options).write(scene_path, "ingest", options, "synthetic", "sweep", "synthetic")
    run_stage(capability.main, capability.parser(),
              ["--scene", str(scene_path), "--out", str(cap_path), "--params", json.dumps(params["capability"])])
    scene = read_store("scene", scene_path)
    targets_cfg = config_from_params(SasEvalConfig, params["distill"].get("targets", {}), "distill targets")
    points_2d = fused_scene_features(scene, read_store("capability", cap_path), targets_cfg)
    fused, seen, text, vocabulary = points_2d.features, points_2d.seen, points_2d.text, points_2d.vocabulary
    points = torch.from_numpy(scene.load("points_xyz")).float()
    print(f"2D fusion: {miou_19(fused, scene, text, vocabulary):.1f}", flush=True)
    rows = []
    for run in args.runs:
        merged = {**params["distill"], **run}
        cfg = config_from_params(DistillConfig, {k: v for k, v in merged.items() if k not in SCHEDULE_KEYS}, "distill")
        schedule = config_from_params(DistillSchedule, {k: v for k, v in merged.items() if k in SCHEDULE_KEYS})
        segment, _ = scan_superpoints(scene, cfg)
        targets = DistillTargets(points, torch.from_numpy(fused).float(), torch.from_numpy(seen),
                                 torch.from_numpy(segment), torch.from_numpy(text).float())
        _, sp_point, _ = superpoint_targets(targets.fused, targets.segment, targets.num_segments, targets.seen)
        vox = voxelise(points.double(), schedule.voxel_size)
        bounds = {"superpoints": targets.num_segments,
                  "bound_fused": miou_19(vox.devoxelise(vox.pool(targets.fused.double())).numpy(), scene, text,
                                         vocabulary),
                  "bound_sp": miou_19(vox.devoxelise(vox.pool(sp_point.double())).numpy(), scene, text, vocabulary)}
        name = json.dumps(run, sort_keys=True)

        def score(epoch: int, features, name=name, bounds=bounds, schedule=schedule) -> None:
            if (epoch + 1) % args.every == 0 or epoch + 1 == schedule.epochs:
                rows.append({"run": name, "epoch": epoch + 1, "miou_3d": miou_19(features(), scene, text, vocabulary),
                             **bounds})
                print(json.dumps(rows[-1]), flush=True)

        start = time.perf_counter()
        train_distillation(targets, get_backend(cfg.backend), schedule, torch.device("cpu"), monitor=score)
        rows[-1]["seconds"] = time.perf_counter() - start
    args.out.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
