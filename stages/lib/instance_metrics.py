"""Class-agnostic instance-segmentation metrics (Gaga's Replica protocol) and boundary IoU (LERF-Mask protocol).

Definitions, as in Gaga's evaluation script (``eval.py`` of github.com/weijielyu/Gaga, which Proto-SaGa Sec. 4.1
follows): predicted and ground-truth instance ids are label maps over a set of views. For every GT instance g and
predicted instance p, IoU(g, p) is the mean over the views in which g is present of the IoU of the masks
(gt == g, pred == p) in that view. The Hungarian algorithm matches GT and predicted instances one-to-one maximising
the summed IoU (scipy's ``linear_sum_assignment``); an unmatched GT instance scores 0. Then
    mIoU      = mean over GT instances of the matched IoU,
    precision = #(matched pairs with IoU > 0.5) / #(predicted instances),
    recall    = #(matched pairs with IoU > 0.5) / #(GT instances).
Our reading: pixels whose GT id is negative (unannotated) are left out of every mask; predicted ids < 0 form no
instance; the instances are those present in the evaluated views. mBIoU replaces the IoU of each matched pair by the
boundary IoU (Cheng et al. 2021, ``boundary_iou``) averaged the same way, as the LERF-Mask protocol of Gaussian
Grouping reports it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.optimize import linear_sum_assignment

HIT_IOU = 0.5
BOUNDARY_DILATION_RATIO = 0.02  # boundary width as a fraction of the image diagonal (boundary-iou-api default)


@dataclass
class InstanceScores:
    """mIoU, precision and recall at IoU 0.5 (and mBIoU when asked) of one set of views, with the matching."""

    miou: float
    precision: float
    recall: float
    mbiou: float
    num_gt: int
    num_pred: int
    gt_ids: np.ndarray
    matched_pred: np.ndarray  # predicted id matched to each GT id, -1 unmatched
    matched_iou: np.ndarray

    def as_dict(self) -> dict[str, float]:
        return {"mIoU": self.miou, "precision": self.precision, "recall": self.recall, "mBIoU": self.mbiou,
                "gt_instances": self.num_gt, "pred_instances": self.num_pred}


def iou_matrix(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU(g, p) averaged over the views where g is present: label maps [V,H,W] -> (iou [G,P], gt ids, pred ids)."""
    valid = gt >= 0
    gt_ids = np.unique(gt[valid])
    pred_ids = np.unique(pred[valid & (pred >= 0)])
    g_index = np.searchsorted(gt_ids, gt)
    p_index = np.where(pred >= 0, np.searchsorted(pred_ids, pred), len(pred_ids))
    n_g, n_p = len(gt_ids), len(pred_ids)
    iou_sum = np.zeros((n_g, n_p))
    views_present = np.zeros(n_g)
    for v in range(gt.shape[0]):
        keep = valid[v]
        gi, pi = g_index[v][keep], p_index[v][keep]
        inter = np.bincount(gi * (n_p + 1) + pi, minlength=n_g * (n_p + 1)).reshape(n_g, n_p + 1)[:, :n_p]
        area_g = np.bincount(gi, minlength=n_g)
        area_p = np.bincount(pi, minlength=n_p + 1)[:n_p]
        present = area_g > 0
        union = area_g[:, None] + area_p[None] - inter
        iou_sum[present] += (inter / np.maximum(union, 1))[present]
        views_present += present
    return iou_sum / np.maximum(views_present, 1)[:, None], gt_ids, pred_ids


def hungarian_match(iou: np.ndarray) -> np.ndarray:
    """The predicted column matched to every GT row (-1 unmatched), maximising the summed IoU."""
    matched = np.full(iou.shape[0], -1, dtype=np.int64)
    if iou.size:
        rows, cols = linear_sum_assignment(iou, maximize=True)
        matched[rows] = cols
    return matched


def mask_boundary(mask: np.ndarray, width: int) -> np.ndarray:
    """Pixels of a boolean mask within ``width`` pixels of its contour: mask minus its erosion by a 3x3 square
    ``width`` times, the image border counting as outside (boundary-iou-api's ``mask_to_boundary``)."""
    padded = np.pad(mask, 1)
    eroded = ndimage.binary_erosion(padded, structure=np.ones((3, 3), bool), iterations=width)[1:-1, 1:-1]
    return mask & ~eroded


def boundary_width(shape: tuple[int, int], ratio: float = BOUNDARY_DILATION_RATIO) -> int:
    """Boundary width in pixels: ``ratio`` x the image diagonal, rounded, at least 1."""
    return max(1, int(round(ratio * float(np.hypot(*shape)))))


def boundary_iou(pred: np.ndarray, gt: np.ndarray, ratio: float = BOUNDARY_DILATION_RATIO) -> float:
    """Boundary IoU (Cheng et al. 2021) of two boolean masks: IoU of their boundary bands (1.0 when both are empty)."""
    width = boundary_width(gt.shape, ratio)
    bp, bg = mask_boundary(pred, width), mask_boundary(gt, width)
    union = np.logical_or(bp, bg).sum()
    return 1.0 if union == 0 else float(np.logical_and(bp, bg).sum() / union)


def instance_scores(pred: np.ndarray, gt: np.ndarray, boundary: bool = True) -> InstanceScores:
    """The Gaga protocol (module docstring) on predicted and GT instance label maps [V,H,W]."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise ValueError(f"predicted label maps {pred.shape} and ground truth {gt.shape} differ in shape")
    iou, gt_ids, pred_ids = iou_matrix(pred, gt)
    match = hungarian_match(iou)
    matched_iou = np.zeros(len(gt_ids))
    matched_iou[match >= 0] = iou[np.nonzero(match >= 0)[0], match[match >= 0]]
    hits = int((matched_iou > HIT_IOU).sum())
    mbiou = float("nan")
    if boundary and len(gt_ids):
        per_gt = []
        for g, p in zip(gt_ids, match):
            views = [v for v in range(gt.shape[0]) if (gt[v] == g).any()]
            if p < 0:
                per_gt.append(0.0)
                continue
            per_gt.append(float(np.mean([boundary_iou((pred[v] == pred_ids[p]) & (gt[v] >= 0), gt[v] == g)
                                         for v in views])))
        mbiou = float(np.mean(per_gt))
    return InstanceScores(miou=float(matched_iou.mean()) if len(gt_ids) else float("nan"),
                          precision=hits / len(pred_ids) if len(pred_ids) else 0.0,
                          recall=hits / len(gt_ids) if len(gt_ids) else float("nan"), mbiou=mbiou,
                          num_gt=len(gt_ids), num_pred=len(pred_ids), gt_ids=gt_ids,
                          matched_pred=np.array([pred_ids[m] if m >= 0 else -1 for m in match], dtype=np.int64),
                          matched_iou=matched_iou)


def consistent_label_maps(labels: np.ndarray, consistent_id: list[np.ndarray]) -> np.ndarray:
    """Label maps [V,H,W] of consistent ids from per-view mask label maps and, per view, the id of each mask id
    (the associated masks of Proto-SaGa Table 3); pixels of masks without an id become -1."""
    out = np.full(labels.shape, -1, dtype=np.int64)
    for v, ids in enumerate(consistent_id):
        lut = np.append(np.asarray(ids, dtype=np.int64), -1)
        lab = labels[v]
        out[v] = np.where((lab >= 0) & (lab < len(ids)), lut[np.clip(lab, 0, len(ids))], -1)
    return out
