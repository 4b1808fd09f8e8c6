"""How far SAS's superpoints (Sec. 3.5 graph over-segmentation) and the distillation's voxels cap the distilled
network on the benchmark room: the 3D mIoU (classes present, unlabelled points left out, as ``evaluate_semantic``)
when every superpoint, or every voxel, takes the majority GT class of its points, per graph setting and voxel size,
with the segment count and point purity. No training: a bound on what superpoint targets (Eq. 10's F^2D_SP) and
voxel-constant outputs (de-voxelisation copies a voxel's output to its points) can reach.

The room is the GPU bench room's layout and 100k points (``GPU_ROOM``) with fewer, smaller views so it renders on a
CPU (the points are train-view pixels spread evenly over the views, so the count and spacing stay those of the room):
  python -m bench.sas_superpoint_bound --views 24 --size 96 --out bench/results/sas_superpoint_bound.csv
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.common import GPU_ROOM, base_row
from stages.ingest import load_source
from stages.lib.semantic_metrics import confusion_matrix, miou_macc
from stages.lib.sparse_conv.voxels import voxelise
from stages.lib.store import read_store
from stages.methods.sas.superpoints import GraphSegmentation, graph_segments

SETTINGS = [(10, 20), (6, 20), (6, 5), (10, 5)]  # (neighbours, min_size); (10, 20): the segmentator's defaults
VOXEL_SIZES = [0.02, 0.05]  # the paper's indoor voxel, the GPU recipe's


def majority_miou(segments: np.ndarray, semantic: np.ndarray) -> tuple[float, float]:
    """(mIoU over the GT classes present, point accuracy) when every segment takes the majority GT class of its
    labelled points, scored as ``evaluate_semantic`` scores points: unlabelled points (GT < 0) are left out, and a
    segment without labelled points predicts nothing."""
    labelled = semantic >= 0
    num_classes = int(semantic.max()) + 1
    votes = np.zeros((segments.max() + 1, num_classes), np.int64)
    np.add.at(votes, (segments[labelled], semantic[labelled]), 1)
    pred = np.where(votes.any(1), votes.argmax(1), -1)[segments]
    miou, _, _, _ = miou_macc(confusion_matrix(semantic, pred, num_classes))
    return miou, float((pred == semantic)[labelled].mean())


def voxel_segments(xyz: np.ndarray, voxel_size: float) -> np.ndarray:
    """[N] index of each point's voxel, by the distillation's own voxelisation (``voxelise``)."""
    return voxelise(torch.from_numpy(xyz), voxel_size).point_voxel.numpy()


def bound_row(options: dict, xyz: np.ndarray, segments: np.ndarray, semantic: np.ndarray, seconds: float,
              **setting) -> dict:
    """One CSV row: the setting, the segment count, the majority-label bound and the point purity."""
    miou, purity = majority_miou(segments, semantic)
    row = {**base_row("sas_gpu", options), "points": len(xyz), **setting, "segments": int(segments.max() + 1),
           "majority_miou": miou, "point_purity": purity, "seconds": seconds}
    print(row, flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--views", type=int, default=24)
    ap.add_argument("--size", type=int, default=96, help="view width = height (pixels)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/ovgs_sas_superpoint_bound"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    options = {**GPU_ROOM, "num_views": args.views, "width": args.size, "height": args.size, "device": "cpu"}
    scene_path = args.work / "scene.zarr"
    load_source("synthetic", None, options).write(scene_path, "ingest", options, "synthetic", "bench_room",
                                                  "synthetic")
    scene = read_store("scene", scene_path)
    xyz, semantic = scene.load("points_xyz").astype(np.float64), scene.load("points_semantic").astype(np.int64)
    rows = []
    for neighbours, min_size in SETTINGS:
        t0 = time.perf_counter()
        segments = graph_segments(xyz, GraphSegmentation(neighbours=neighbours, min_size=min_size))
        rows.append(bound_row(options, xyz, segments, semantic, time.perf_counter() - t0, kind="superpoints",
                              neighbours=neighbours, min_size=min_size))
    for size in VOXEL_SIZES:
        t0 = time.perf_counter()
        segments = voxel_segments(xyz, size)
        rows.append(bound_row(options, xyz, segments, semantic, time.perf_counter() - t0, kind="voxels",
                              voxel_size=size))
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, mode="a", header=not args.out.exists(), index=False)


if __name__ == "__main__":
    main()
