"""Semantic evaluation stage (OpenInsGaussian supplement B.4): ScanNet 3D protocol and LERF 2D protocol.

3D: every ground-truth point (``points_semantic``, -1 ignored) takes the label of a Gaussian, a Gaussian's
label being its instance's argmax over the text features of the evaluated class subset (19 / 15 / 10 ScanNet
classes); mIoU and mAcc over the classes present, and the IoU of every class. Which Gaussian: under the paper's ScanNet
setting (``train_gs`` ``fixed_points``: the centres are the scan's points, in order) point i takes Gaussian i's label
(``scan_points``); otherwise its nearest Gaussian's (``nearest_gaussian``); the tables name the one used. With GT
instances on the points (``points_instance``) the codebook's purity (``semantic_metrics.codebook_purity``) and the 3D
mIoU of a codebook whose every cluster takes its majority GT instance's class (the codebook's upper bound, which
separates what the codebook loses from what association loses) are reported too. Evaluations with per-point
features (SAS's) add the long-tail K-class protocol (``long_tail_3d`` rows, K = 40 / 80 / 160,
``stages.lib.vocabularies``): each point's argmax over the K vocabulary's text features, mIoU / mAcc over the
vocabulary classes present in the ground truth. 2D: every category present in the test views' ground truth is a
text query; its selection is rendered on every test view that shows it and compared with the ground-truth category
mask; a query's IoU is the mean over those views; mIoU and mAcc@0.25 / @0.5 over the queries. With ``ovs_2d`` also
the 3D-OVS 2D protocol (CCL-LGS's reading, ``stages/methods/ccl/evaluate.py``): the class list is the categories present
in the test views; every Gaussian takes its instance's argmax over the class list, the one-hot labels are rendered
(3DGS compositing) and each pixel takes the class of largest weight, a pixel no labelled Gaussian covers being a miss.
A method with queries of its own names a registered ``evaluation`` piece (parameter ``evaluation``, e.g. ``ccl``):
``run(call: StageCall) -> SemanticResult`` (optionally with LERF localization accuracy and the 3D-OVS 2D protocol),
written here in the same store and table layout.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from stages.lib.annotation_protocols import pair_ious, query_means
from stages.lib.cli import StageCall, config_from_params, pick_device, run_stage, stage_inputs, stage_parser
from stages.lib.instance_gaussians import Cameras
from stages.lib.selection import SelectionConfig, SelectMode
from stages.lib.semantic_metrics import (
    SCANNET_SUBSETS,
    Purity,
    QueryMasks,
    SemanticResult,
    class_list_confusion,
    codebook_purity,
    confusion_matrix,
    gaussian_instances,
    gaussian_of_points,
    lerf_query_metrics,
    miou_macc,
    points_protocol,
    present_classes,
    subset_labels,
)
from stages.lib.store import Store, StoreError, read_store, write_store
from stages.lib.tables import write_csv_atomic
from stages.lib.vocabularies import LONG_TAIL_NAMES
from stages.methods import lookup
from stages.methods.openins.query import Query

log = logging.getLogger(__name__)
PERCENT = 100.0
INPUTS = ["scene", "gaussians", "codebook", "association", "features", "capability", "distilled"]


@dataclass
class SemanticEvalConfig(SelectionConfig):
    """How the 2D queries select and render: by default each category selects the instances it labels; ``ovs_2d``:
    also the 3D-OVS protocol (module docstring)."""

    mode: SelectMode = "vocabulary"
    ovs_2d: bool = False

    def selection(self) -> dict:
        """The ``SelectionConfig`` knobs, as ``Query.render_selection`` takes them."""
        return {f.name: getattr(self, f.name) for f in fields(SelectionConfig)}


# ----------------------------------------------------------------------------------------------
# ScanNet protocol (3D)
# ----------------------------------------------------------------------------------------------
def scannet_3d(query: Query, means: np.ndarray, points: np.ndarray, points_semantic: np.ndarray,
               categories: list[str]) -> dict[int, np.ndarray]:
    """Confusion matrix [C, C+1] per ScanNet class subset (19 / 15 / 10)."""
    index, _ = gaussian_of_points(points, means)
    out = {}
    for size, subset in SCANNET_SUBSETS.items():
        gt = subset_labels(points_semantic, categories, subset)
        out[size] = confusion_matrix(gt, query.subset_labels(subset)[index], len(subset))
    return out


def instance_classes(points_instance: np.ndarray, points_semantic: np.ndarray) -> np.ndarray:
    """Class of every GT instance id (the most frequent class of its points; -1 for ids without points)."""
    keep = points_instance >= 0
    table = np.full(int(points_instance.max()) + 1 if keep.any() else 0, -1, np.int64)
    pairs, counts = np.unique(np.stack([points_instance[keep], points_semantic[keep]], 1), axis=0, return_counts=True)
    for (inst, cls), _ in sorted(zip(map(tuple, pairs), counts), key=lambda x: x[1]):
        table[inst] = cls  # ascending counts: the most frequent class is written last
    return table


def codebook_oracle_3d(leaf: np.ndarray, means: np.ndarray, points: np.ndarray, points_semantic: np.ndarray,
                       points_instance: np.ndarray, categories: list[str]) -> tuple[dict[int, np.ndarray], Purity]:
    """Codebook purity, and the confusions when every cluster is labelled with its majority GT instance's class."""
    purity = codebook_purity(leaf, gaussian_instances(means, points, points_instance))
    cluster_class = np.full(int(leaf.max()) + 2, -1, np.int64)
    cluster_class[purity.cluster_ids] = instance_classes(points_instance, points_semantic)[purity.majority]
    gaussian_class = cluster_class[np.where(leaf >= 0, leaf, -1)]
    index, _ = gaussian_of_points(points, means)
    out = {}
    for size, subset in SCANNET_SUBSETS.items():
        pred = subset_labels(gaussian_class[index], categories, subset)
        out[size] = confusion_matrix(subset_labels(points_semantic, categories, subset), pred, len(subset))
    return out, purity


# ----------------------------------------------------------------------------------------------
# LERF protocol (2D)
# ----------------------------------------------------------------------------------------------
def lerf_2d(query: Query, cams: Cameras, gt_semantic: np.ndarray, categories: list[str],
            cfg: SemanticEvalConfig, masks: QueryMasks | None = None) -> dict[str, float]:
    """IoU per text query (each category present in the test views), mean over the views that show it: the macro
    per-query IoU of the LERF-OVS protocol (``stages/lib/annotation_protocols.py``) on the GT label maps. ``masks``
    keeps each query's selection on the first view showing it (figures)."""
    present = [int(c) for c in np.unique(gt_semantic) if c >= 0]
    if not present:
        return {}
    pair_query, ious = [], []
    for q, c in enumerate(tqdm(present, desc="text queries", unit="query")):
        with torch.no_grad():
            sel = query.render_selection(categories[c], cams, **cfg.selection()).cpu().numpy()
        gt = gt_semantic == c
        shown = gt.any(axis=(1, 2))
        ious.append(pair_ious(sel[shown], gt[shown]))
        pair_query += [q] * int(shown.sum())
        if masks is not None:
            first = int(np.argmax(shown))
            masks.keep(categories[c], first, sel[first])
    return query_means([categories[c] for c in present], np.array(pair_query), np.concatenate(ious))


# ----------------------------------------------------------------------------------------------
# 3D-OVS protocol (2D, class list)
# ----------------------------------------------------------------------------------------------
def ovs_2d(query: Query, cams: Cameras, gt: np.ndarray, categories: list[str]) -> tuple[list[str], np.ndarray]:
    """The class list (categories present in ``gt`` [T,H,W]) and the confusion [C, C+1] of the rendered class maps."""
    classes = present_classes(gt, categories)
    return classes, class_list_confusion(gt, query.render_class_maps(classes, cams), categories, classes)


def text_protocols(query: Query, cams: Cameras, gt: np.ndarray, categories: list[str], cfg: SemanticEvalConfig
                   ) -> dict:
    """The 2D protocols of a codebook-search query on the test views ``cams`` (label maps ``gt`` [T,H,W]), as
    ``SemanticResult`` fields: ``query_iou`` (LERF), ``query_masks`` and, with ``cfg.ovs_2d``, ``ovs_classes`` /
    ``ovs_confusion``."""
    masks = QueryMasks.empty()
    out = {"query_iou": lerf_2d(query, cams, gt, categories, cfg, masks), "query_masks": masks}
    if cfg.ovs_2d:
        out["ovs_classes"], out["ovs_confusion"] = ovs_2d(query, cams, gt, categories)
    return out


# ----------------------------------------------------------------------------------------------
# Tables and the stage
# ----------------------------------------------------------------------------------------------
def metrics_table(confusions: dict[int, np.ndarray], query_iou: dict[str, float],
                  lerf: dict[str, float], result: SemanticResult | None = None) -> pd.DataFrame:
    """Rows per class subset (supplement Table 2 columns: mIoU, mAcc) and per text query plus their mean
    (Table 3 columns: mIoU, mAcc@0.25, mAcc@0.5), in percent; with ``result``'s long-tail confusions one
    ``long_tail_3d`` row per K (SAS Table 2); with its localization a ``loc. acc`` column
    on the LERF rows, and with its 3D-OVS confusion one ``3dovs_2d`` row (mIoU, mAcc over the class list)."""
    rows = []
    points = result.points_protocol if result is not None else SemanticResult({}, {}).points_protocol
    for size, cm in confusions.items():
        miou, macc, _, _ = miou_macc(cm)
        rows.append({"protocol": "scannet_3d", "subset": f"{size} classes", "query": "", "points": points,
                     "mIoU": miou * PERCENT, "mAcc": macc * PERCENT})
    for k, cm in (result.long_tail if result is not None and result.long_tail else {}).items():
        miou, macc, _, _ = miou_macc(cm)
        rows.append({"protocol": "long_tail_3d", "subset": f"K={k}", "query": "", "points": points,
                     "mIoU": miou * PERCENT, "mAcc": macc * PERCENT})
    rows += class_rows("scannet_3d_class", confusions[19], points)
    if result is not None and result.codebook_oracle is not None:
        miou, macc, _, _ = miou_macc(result.codebook_oracle[19])
        rows.append({"protocol": "scannet_3d_codebook_oracle", "subset": "19 classes", "query": "", "points": points,
                     "mIoU": miou * PERCENT, "mAcc": macc * PERCENT})
        rows += class_rows("scannet_3d_codebook_oracle_class", result.codebook_oracle[19], points)
    if result is not None and result.purity is not None:
        rows.append({"protocol": "codebook_purity", "subset": "clusters", "query": "", "points": points,
                     **{k: (v * PERCENT if k.startswith("purity") else v) for k, v in result.purity.as_dict().items()}})
    loc = result.localization if result is not None else None
    for text, iou in query_iou.items():
        one = lerf_query_metrics(np.array([iou]))
        rows.append({"protocol": "lerf_2d", "subset": "query", "query": text, "mIoU": iou * PERCENT,
                     **{k: v * PERCENT for k, v in one.items() if k.startswith("mAcc@")},
                     **({"loc. acc": loc[text] * PERCENT} if loc else {})})
    rows.append({"protocol": "lerf_2d", "subset": "mean", "query": "",
                 **{k: v * PERCENT for k, v in lerf.items()},
                 **({"loc. acc": float(np.mean(list(loc.values()))) * PERCENT} if loc else {})})
    if result is not None and result.ovs_confusion is not None:
        miou, macc, _, _ = miou_macc(result.ovs_confusion)
        rows.append({"protocol": "3dovs_2d", "subset": f"{len(result.ovs_classes)} classes", "query": "",
                     "mIoU": miou * PERCENT, "mAcc": macc * PERCENT})
    return pd.DataFrame(rows).round(2)


def class_rows(protocol: str, cm: np.ndarray, points: str) -> list[dict]:
    """One row per ScanNet-19 class present: its IoU and accuracy (%)."""
    _, _, iou, acc = miou_macc(cm)
    return [{"protocol": protocol, "subset": "19 classes", "query": name, "points": points,
             "IoU": iou[c] * PERCENT, "mAcc": acc[c] * PERCENT}
            for c, name in enumerate(SCANNET_SUBSETS[19]) if not np.isnan(iou[c])]


def check_inputs(scene: Store, association: Store) -> None:
    """The scene needs 3D and 2D ground truth, and every scene category must be a vocabulary entry (a query)."""
    for name in ("points_semantic", "gt_semantic"):
        if name not in scene:
            raise StoreError(f"{scene.path}: no {name!r} ground truth to evaluate against")
    missing = sorted(set(scene.attrs["categories"]) - set(association.attrs["vocabulary"]))
    if missing:
        raise StoreError(f"{association.path}: the vocabulary lacks the scene categories {missing}")


def codebook_search(args: argparse.Namespace, scene: Store, device: torch.device) -> SemanticResult:
    """The default evaluation: instances found by codebook search (OpenInsGaussian's query)."""
    cfg = config_from_params(SemanticEvalConfig, args.params)
    if args.gaussians is None or args.codebook is None or args.association is None:
        raise ValueError("evaluate_semantic: the codebook-search query needs --gaussians, --codebook and "
                         "--association (name train_features or pseudo_gt, codebook and associate in the variant's "
                         "after: block)")
    check_inputs(scene, read_store("association", args.association))
    query = Query.load(args.association, args.codebook, args.gaussians, device=device)
    categories = list(scene.attrs["categories"])
    means = query.gaussians.means.cpu().numpy()
    points, points_semantic = scene.load("points_xyz"), scene.load("points_semantic")
    confusions = scannet_3d(query, means, points, points_semantic, categories)
    oracle, purity = None, None
    if "points_instance" in scene:
        oracle, purity = codebook_oracle_3d(query.leaf_id.cpu().numpy(), means, points, points_semantic,
                                            scene.load("points_instance"), categories)
    test = np.nonzero(scene.load("is_test"))[0]
    gt = np.stack([scene["gt_semantic"][int(v)] for v in test])
    labels = query.subset_labels(SCANNET_SUBSETS[19])[gaussian_of_points(points, means)[0]]
    return SemanticResult(confusions, **text_protocols(query, Cameras.from_scene(scene, test, device), gt, categories,
                                                       cfg),
                          points_protocol=points_protocol(points, means), purity=purity, codebook_oracle=oracle,
                          point_labels=labels)


def main(args: argparse.Namespace) -> None:
    device = pick_device(args.device)
    scene = read_store("scene", args.scene)
    params = dict(args.params)
    if "evaluation" in params:
        run = lookup("evaluation", params["evaluation"])
        result = run(StageCall("evaluate_semantic", stage_inputs(args, INPUTS), params,
                               {k: v for k, v in params.items() if k != "evaluation"}, device, Path(args.out),
                               args.weights_dir))
    else:
        result = codebook_search(args, scene, device)
    confusions, query_iou = result.confusions, result.query_iou
    lerf = lerf_query_metrics(np.array(list(query_iou.values())))
    table = metrics_table(confusions, query_iou, lerf, result)
    subsets = {str(size): {"mIoU": m, "mAcc": a} for size, (m, a, _, _) in
               ((s, miou_macc(cm)) for s, cm in confusions.items())}
    inputs = {name: getattr(args, name) for name in INPUTS if getattr(args, name) is not None}
    with write_store("semantic_metrics", args.out, "evaluate_semantic", args.params, inputs) as w:
        w.write("confusion_3d", confusions[19].astype(np.int64))
        w.write("query_iou_2d", np.array(list(query_iou.values()), dtype=np.float32))
        class_iou = miou_macc(confusions[19])[2]
        w.attrs.update(categories=SCANNET_SUBSETS[19], miou_3d=subsets["19"]["mIoU"], macc_3d=subsets["19"]["mAcc"],
                       miou_2d=lerf["mIoU"], lerf_2d=lerf, subsets_3d=subsets, queries=list(query_iou),
                       points_protocol=result.points_protocol,
                       class_iou_3d={n: float(v) for n, v in zip(SCANNET_SUBSETS[19], class_iou) if not np.isnan(v)})
        if result.purity is not None:
            w.attrs["codebook_purity"] = result.purity.as_dict()
            w.attrs["miou_3d_codebook_oracle"] = miou_macc(result.codebook_oracle[19])[0]
        if result.point_labels is not None:
            w.write("points_pred_3d", result.point_labels.astype(np.int32))
        if result.query_masks is not None:
            views, masks = result.query_masks.arrays(list(query_iou), scene["gt_semantic"].shape[1:])
            test = np.nonzero(scene.load("is_test"))[0]
            w.write("query_views_2d", np.where(views >= 0, test[np.maximum(views, 0)], -1).astype(np.int32))
            w.write("query_masks_2d", masks)
        if result.localization is not None:
            w.write("query_localization_2d", np.array([result.localization[q] for q in query_iou], np.float32))
            w.attrs["loc_acc_2d"] = float(np.mean(list(result.localization.values())))
        if result.long_tail is not None:
            for k, cm in result.long_tail.items():
                w.write(f"confusion_long_tail_{k}", cm.astype(np.int64))
            w.attrs.update(long_tail_vocabulary=LONG_TAIL_NAMES, long_tail_3d={
                str(k): dict(zip(("mIoU", "mAcc"), miou_macc(cm)[:2])) for k, cm in result.long_tail.items()})
        if result.ovs_confusion is not None:
            w.write("confusion_ovs", result.ovs_confusion.astype(np.int64))
            w.attrs.update(ovs_classes=result.ovs_classes, miou_ovs_2d=miou_macc(result.ovs_confusion)[0])
    scene_attrs = scene.attrs
    table.insert(0, "scene", scene_attrs["scene"])
    table.insert(0, "dataset", scene_attrs["dataset"])
    write_csv_atomic(table, Path(args.table))
    log.info("3D mIoU (19 classes, %s) %.2f, 2D mIoU %.2f", result.points_protocol, subsets["19"]["mIoU"] * PERCENT,
             lerf["mIoU"] * PERCENT)
    if result.purity is not None:
        log.info("codebook purity %.3f (Gaussian-weighted %.3f), %d of %d GT instances are a cluster's majority",
                 result.purity.purity, result.purity.purity_weighted, result.purity.instances_majority,
                 result.purity.gt_instances)


def parser() -> argparse.ArgumentParser:
    p = stage_parser("evaluate_semantic", __doc__)
    p.add_argument("--scene", required=True, help="scene store with points_semantic and gt_semantic")
    p.add_argument("--gaussians", default=None, help="feature_gaussians store (after: train_features or pseudo_gt)")
    p.add_argument("--codebook", default=None, help="codebook store (after: codebook)")
    p.add_argument("--association", default=None, help="association store (after: associate)")
    p.add_argument("--features", default=None, help="features store (optional: after: features)")
    p.add_argument("--capability", default=None, help="capability store (SAS: after: capability)")
    p.add_argument("--distilled", default=None, help="distilled_points store (SAS 3D: after: distill)")
    p.add_argument("--out", required=True, help="output semantic_metrics store (.zarr)")
    p.add_argument("--table", required=True, help="CSV table: one row per class subset and per text query")
    p.add_argument("--weights-dir", default=None, help="model checkpoints of evaluations that run 2D models (SAS's "
                   "real models; default: $OVGS_WEIGHTS or weights/)")
    return p


if __name__ == "__main__":
    run_stage(main, parser())
