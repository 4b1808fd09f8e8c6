"""Chance levels of the semantic protocols on a scene store, for DAG tests that assert a method is above chance."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.lib.store import read_store


def whole_image_iou(scene_store: Path) -> float:
    """LERF 2D protocol: mean over the text queries (GT categories of the test views) of the IoU of selecting every
    pixel, i.e. of the query's mean GT fraction over the test views that show it."""
    scene = read_store("scene", scene_store)
    gt = np.stack([scene["gt_semantic"][int(v)] for v in np.nonzero(scene.load("is_test"))[0]])
    return float(np.mean([np.mean([(g == c).mean() for g in gt if (g == c).any()])
                          for c in np.unique(gt) if c >= 0]))


def constant_label_miou(scene_store: Path) -> float:
    """ScanNet 3D protocol: the best mIoU one label for every point reaches, (largest class share) / (classes
    present); the mean over classes gives every other class an IoU of 0."""
    labels = read_store("scene", scene_store).load("points_semantic")
    counts = np.bincount(labels[labels >= 0])
    counts = counts[counts > 0]
    return float(counts.max() / counts.sum() / len(counts))
