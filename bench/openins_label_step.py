"""Where OpenInsGaussian's label step loses points: per codebook leaf, the Eq. 8 associations behind its label.

Reruns the association of one level's work folder (the ``associate`` params stored in its ``associate.zarr``) and,
for every leaf whose majority GT class (over the scan points, Gaussians fixed at the points) is not the label it
was given, splits its fusion weight (``fusion_weights``) by what the associated masks are: masks whose GT majority
is the leaf's class or not, and masks whose CLIP feature reads as that class or not. One CSV row per such leaf,
one summary line per level. Usage:

    python -m bench.openins_label_step --work results/bench_openins_scan/seed2/strong --out /tmp/label_step.csv

(the scene is the nearest ``scene.zarr`` above the level folder unless ``--scene`` names it). A leaf's points are those of the
purified ``leaf_id`` where the association store has one (the labels the evaluation uses).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.lib.cli import config_from_params
from stages.lib.open_vocabulary import label_instances
from stages.lib.oracle.embedding import majority_category
from stages.lib.store import read_store
from stages.methods.openins.association import (
    AssociationConfig,
    associate_level,
    fusion_weights,
)


def leaf_majority(leaf: np.ndarray, semantic: np.ndarray, num_leaves: int) -> tuple[np.ndarray, np.ndarray]:
    """Per leaf its majority GT class over its labelled points (-1: none) and its point count."""
    ok = (leaf >= 0) & (semantic >= 0)
    bins = int(semantic.max()) + 1
    counts = np.bincount(leaf[ok] * bins + semantic[ok], minlength=num_leaves * bins).reshape(num_leaves, bins)
    return np.where(counts.any(1), counts.argmax(1), -1), np.bincount(leaf[leaf >= 0], minlength=num_leaves)


def diagnose(scene_path: Path, work: Path, device: str) -> pd.DataFrame:
    """One row per association of a leaf whose label differs from its majority class."""
    assoc_store = read_store("association", work / "associate.zarr")
    params = {k: v for k, v in assoc_store.attrs["provenance"]["params"].items() if k != "rule"}
    cfg = config_from_params(AssociationConfig, params, "diagnosis")
    features = read_store("features", work / "features.zarr")
    level = associate_level(scene_path, work / "pseudo_gt.zarr", work / "codebook.zarr", work / "masks.zarr",
                            features, cfg, device, progress=False)
    g, assoc, clip = level.gaussians, level.assoc, level.clip.float()
    weight = fusion_weights(clip, assoc.instance, g.num_instances, cfg.tau,
                            assoc.score if cfg.score_weighted else None)
    clip_class = label_instances(clip, torch.from_numpy(features.load("text_features")).to(device)).cpu().numpy()
    view, mask = assoc.view.cpu().numpy(), assoc.mask.cpu().numpy()
    scene = read_store("scene", scene_path)
    semantic = scene.load("gt_semantic")[level.train]
    labels = level.label_maps.cpu().numpy()
    mask_class = np.array([majority_category(semantic[v], (labels[v] == m)[None])[0] for v, m in zip(view, mask)])
    leaf = assoc_store.load("leaf_id") if "leaf_id" in assoc_store else g.leaf_id.cpu().numpy()
    majority, size = leaf_majority(leaf, scene.load("points_semantic"), g.num_instances)
    label = assoc_store.load("instance_label")
    inst = assoc.instance.cpu().numpy()
    return pd.DataFrame({
        "leaf": inst, "leaf_points": size[inst], "leaf_class": majority[inst], "leaf_label": label[inst],
        "view": level.train[view], "score": assoc.score.cpu().numpy(), "weight": weight.cpu().numpy(),
        "mask_class": mask_class, "clip_class": clip_class})


def summarise(table: pd.DataFrame, vocabulary: list[str]) -> pd.DataFrame:
    """Per mislabelled leaf (majority known, label different): the fusion weight on right / wrong masks."""
    wrong = table[(table.leaf_class >= 0) & (table.leaf_label != table.leaf_class)].copy()
    wrong["mask_right"] = (wrong.mask_class == wrong.leaf_class) * wrong.weight
    wrong["clip_right"] = (wrong.clip_class == wrong.leaf_class) * wrong.weight
    wrong["clip_is_label"] = (wrong.clip_class == wrong.leaf_label) * wrong.weight
    wrong["mask_is_label"] = (wrong.mask_class == wrong.leaf_label) * wrong.weight
    out = wrong.groupby("leaf").agg(
        points=("leaf_points", "first"), leaf_class=("leaf_class", "first"), label=("leaf_label", "first"),
        views=("view", "size"), weight_mask_right=("mask_right", "sum"), weight_clip_right=("clip_right", "sum"),
        weight_clip_is_label=("clip_is_label", "sum"), weight_mask_is_label=("mask_is_label", "sum"),
        share_views_clip_right=("clip_right", lambda s: float((s > 0).mean())),
        max_weight=("weight", "max"), median_score=("score", "median")).reset_index()
    out["leaf_class"] = [vocabulary[k] for k in out.leaf_class]
    out["label"] = [vocabulary[k] for k in out.label]
    return out.sort_values("points", ascending=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scene", type=Path, help="default: the nearest scene.zarr above --work")
    parser.add_argument("--work", type=Path, nargs="+", required=True, help="level folders (with associate.zarr)")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    frames = []
    for work in args.work:
        vocabulary = list(read_store("features", work / "features.zarr").attrs["vocabulary"])
        scene = args.scene or next(p / "scene.zarr" for p in work.resolve().parents if (p / "scene.zarr").exists())
        table = diagnose(scene, work, args.device)
        summary = summarise(table, vocabulary)
        summary.insert(0, "work", str(work))
        frames.append(summary)
        total = table.groupby("leaf").leaf_points.first().sum()
        print(f"{work}: {len(summary)} mislabelled leaves with {summary.points.sum()} of {total} points; "
              f"weight on masks of the right GT class {summary.weight_mask_right.mean():.2f}, on CLIP features "
              f"reading right {summary.weight_clip_right.mean():.2f}, reading the given label "
              f"{summary.weight_clip_is_label.mean():.2f} (means over the leaves)")
    pd.concat(frames).to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
