"""Cross-view mask association by propagation (CCL-LGS Sec. 3.3): IoU > 0.5 with a propagated mask."""

from __future__ import annotations

import numpy as np

MATCH_IOU = 0.5


def label_iou(labels: np.ndarray, propagated: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """IoU between every mask of a label map and every propagated object: ([n_masks, n_objects], mask ids, object ids).

    Both maps are int32 [H,W] with -1 = none; ids need not be contiguous.
    """
    mask_ids = np.unique(labels[labels >= 0])
    obj_ids = np.unique(propagated[propagated >= 0])
    if mask_ids.size == 0 or obj_ids.size == 0:
        return np.zeros((mask_ids.size, obj_ids.size)), mask_ids, obj_ids
    mi = np.searchsorted(mask_ids, labels)
    oi = np.searchsorted(obj_ids, propagated)
    both = (labels >= 0) & (propagated >= 0)
    inter = np.bincount(mi[both] * obj_ids.size + oi[both], minlength=mask_ids.size * obj_ids.size)
    inter = inter.reshape(mask_ids.size, obj_ids.size).astype(np.float64)
    area_m = np.bincount(mi[labels >= 0], minlength=mask_ids.size)
    area_o = np.bincount(oi[propagated >= 0], minlength=obj_ids.size)
    union = area_m[:, None] + area_o[None] - inter
    return inter / np.maximum(union, 1), mask_ids, obj_ids


def assign_tracks(labels: np.ndarray, propagated: np.ndarray, min_iou: float = MATCH_IOU) -> dict[int, int]:
    """Track id for each mask id of one view: the propagated object with the highest IoU if it exceeds ``min_iou``.

    With non-overlapping masks and ``min_iou >= 0.5`` an object can match at most one mask, so the assignment
    is one-to-one without a matching step. Ties go to the lower object id; unmatched masks get -1.
    """
    iou, mask_ids, obj_ids = label_iou(labels, propagated)
    out = {int(m): -1 for m in mask_ids}
    if obj_ids.size == 0:
        return out
    best = iou.argmax(axis=1)  # argmax returns the first (lowest id) maximum
    for row, m in enumerate(mask_ids):
        if iou[row, best[row]] > min_iou:
            out[int(m)] = int(obj_ids[best[row]])
    return out
