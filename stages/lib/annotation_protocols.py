"""The published 2D protocols of the text-query datasets, scored on a scene's ``QueryAnnotations``.

Predictions come per annotated mask ``m`` (the view ``annotations.view[m]`` rendered for the query
``annotations.queries[annotations.query[m]]``): a boolean mask and, for LERF-OVS localization, a relevance map.

- LERF-OVS (LangSplat's ``eval/evaluate_iou_loc.py``): IoU of every (frame, query) pair; localization hit when the
  pixel of highest relevance lies in one of the pair's boxes (borders included). LangSplat reports the mean over all
  pairs (**query-weighted**: a query annotated on more frames counts more); the **macro** mean first averages each
  query over its frames, then over queries. Both are reported, labelled.
- 3D-OVS (``evaluation_segmentation_test`` of the 3D-OVS repository): per annotated view, every pixel is predicted
  as one class of the (sorted) class list; per class IoU with its mask (sklearn's ``jaccard_score``: 0 when the class
  is neither annotated nor predicted); mIoU = mean over views and classes; accuracy = fraction of pixels whose
  annotated one-hot row equals the predicted one-hot row (a pixel no mask covers is always wrong).
- LERF-Mask (Gaussian Grouping's ``script/eval_lerf_mask.py``): IoU and boundary IoU (dilation ratio 0.02) of every
  (view, prompt) mask; per prompt the mean over its views; mIoU / mBIoU = mean over prompts (macro).
"""

from __future__ import annotations

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.instance_metrics import boundary_iou
from stages.lib.semantic_metrics import localization_hit, mask_iou


def pair_ious(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of every predicted mask with its annotated mask, [M]."""
    return np.array([mask_iou(p, g) for p, g in zip(pred, gt)], dtype=np.float64)


def query_means(queries: list[str], query: np.ndarray, values: np.ndarray) -> dict[str, float]:
    """Mean of per-mask ``values`` for every query (``query[m]`` indexes ``queries``; queries without masks left out),
    in query order: the per-query scores every protocol here and ``evaluate_semantic``'s LERF protocol report."""
    return {q: float(values[query == i].mean()) for i, q in enumerate(queries) if (query == i).any()}


def _check(annotations: QueryAnnotations, pred: np.ndarray, what: str) -> None:
    if pred.shape != annotations.masks.shape:
        raise ValueError(f"{what} have shape {pred.shape}, the annotated masks {annotations.masks.shape}")


def lerf_ovs_scores(annotations: QueryAnnotations, pred: np.ndarray, relevance: np.ndarray) -> dict:
    """LERF-OVS: per-pair IoU and localization hit, per-query means, and both aggregates (module docstring)."""
    _check(annotations, pred, "predicted masks")
    _check(annotations, relevance, "relevance maps")
    iou = pair_ious(pred, annotations.masks)
    hit = np.array([localization_hit(r, g, annotations.boxes[annotations.box_mask == m])
                    for m, (r, g) in enumerate(zip(relevance, annotations.masks))], dtype=np.float64)
    query_iou, query_loc = query_means(annotations.queries, annotations.query, iou), query_means(annotations.queries, annotations.query, hit)
    return {"pair_iou": iou, "pair_hit": hit, "query_iou": query_iou, "query_localization": query_loc,
            "mIoU (query-weighted)": float(iou.mean()), "mIoU (macro)": float(np.mean(list(query_iou.values()))),
            "loc. acc (query-weighted)": float(hit.mean()),
            "loc. acc (macro)": float(np.mean(list(query_loc.values())))}


def ovs3d_scores(annotations: QueryAnnotations, class_maps: dict[int, np.ndarray]) -> dict:
    """3D-OVS: ``class_maps[view]`` = predicted class index [H,W] into ``annotations.queries`` for every annotated
    view; per-view class IoUs, mIoU and accuracy (module docstring)."""
    views = sorted(set(annotations.view.tolist()))
    missing = [v for v in views if v not in class_maps]
    if missing:
        raise ValueError(f"no predicted class map for annotated views {missing}")
    num_classes = len(annotations.queries)
    per_view_iou, per_view_acc = [], []
    for v in views:
        pred = np.asarray(class_maps[v])
        gt = np.zeros((num_classes, *pred.shape), bool)
        for m in np.nonzero(annotations.view == v)[0]:
            gt[annotations.query[m]] = annotations.masks[m]
        onehot = pred[None] == np.arange(num_classes)[:, None, None]
        ious = [mask_iou(onehot[c], gt[c]) if (onehot[c] | gt[c]).any() else 0.0 for c in range(num_classes)]
        per_view_iou.append(ious)
        per_view_acc.append(float((onehot == gt).all(axis=0).mean()))
    iou = np.array(per_view_iou)
    return {"views": views, "class_iou": iou, "view_accuracy": np.array(per_view_acc),
            "query_iou": dict(zip(annotations.queries, iou.mean(axis=0).tolist())),
            "mIoU": float(iou.mean()), "accuracy": float(np.mean(per_view_acc))}


def lerf_mask_scores(annotations: QueryAnnotations, pred: np.ndarray) -> dict:
    """LERF-Mask: per-mask IoU and boundary IoU, per-prompt means and their macro means (module docstring)."""
    _check(annotations, pred, "predicted masks")
    iou = pair_ious(pred, annotations.masks)
    biou = np.array([boundary_iou(p, g) for p, g in zip(pred, annotations.masks)])
    query_iou, query_biou = query_means(annotations.queries, annotations.query, iou), query_means(annotations.queries, annotations.query, biou)
    return {"pair_iou": iou, "pair_biou": biou, "query_iou": query_iou, "query_biou": query_biou,
            "mIoU": float(np.mean(list(query_iou.values()))), "mBIoU": float(np.mean(list(query_biou.values())))}
