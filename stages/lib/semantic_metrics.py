"""Semantic-segmentation metrics: confusion matrices, mIoU / mAcc (ScanNet 3D protocol), LERF 2D query metrics."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SCANNET19 = ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "picture",
             "counter", "desk", "curtain", "refrigerator", "shower curtain", "toilet", "sink", "bathtub"]
# The class subsets of the OpenGaussian / OpenInsGaussian ScanNet protocol (supplement B.4).
SCANNET_SUBSETS: dict[int, list[str]] = {
    19: SCANNET19,
    15: ["wall", "floor", "cabinet", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "counter",
         "desk", "curtain", "toilet", "sink"],
    10: ["wall", "floor", "bed", "chair", "sofa", "table", "door", "window", "bookshelf", "toilet"],
}


@dataclass
class SemanticResult:
    """What a semantic evaluation measured: a confusion [C, C+1] per ScanNet class subset, the IoU of every LERF text
    query, and optionally per-query localization accuracy and the 3D-OVS confusion over its class list."""

    confusions: dict[int, np.ndarray]
    query_iou: dict[str, float]
    localization: dict[str, float] | None = None
    ovs_classes: list[str] | None = None
    ovs_confusion: np.ndarray | None = None


def confusion_matrix(gt: np.ndarray, pred: np.ndarray, num_classes: int) -> np.ndarray:
    """C[g, p] = samples of ground-truth class g predicted as p, shape [C, C+1]; column C counts invalid predictions
    (unlabelled / outside the vocabulary, a miss); gt < 0 is ignored."""
    keep = (gt >= 0) & (gt < num_classes)
    pred = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)  # out-of-range = a miss
    flat = gt[keep].astype(np.int64) * (num_classes + 1) + pred[keep]
    cm = np.bincount(flat, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)
    return cm


def miou_macc(cm: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray]:
    """mIoU and mAcc over the classes present in the ground truth (rows with samples).

    IoU_c = TP / (TP + FP + FN), Acc_c = TP / (TP + FN); ``cm`` is [C, C(+1 miss column)].
    """
    num_classes = cm.shape[0]
    tp = np.diag(cm[:, :num_classes]).astype(np.float64)
    gt_count = cm.sum(axis=1).astype(np.float64)
    pred_count = cm[:, :num_classes].sum(axis=0).astype(np.float64)
    present = gt_count > 0
    iou = np.full(num_classes, np.nan)
    acc = np.full(num_classes, np.nan)
    iou[present] = tp[present] / (gt_count + pred_count - tp)[present]
    acc[present] = tp[present] / gt_count[present]
    return float(np.nanmean(iou)), float(np.nanmean(acc)), iou, acc


def subset_labels(labels: np.ndarray, vocabulary: list[str], subset: list[str]) -> np.ndarray:
    """Map vocabulary ids to subset ids; classes outside the subset become -1 (ignored)."""
    lut = np.array([subset.index(name) if name in subset else -1 for name in vocabulary] + [-1])
    return lut[np.where(labels < 0, len(vocabulary), labels)]


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two boolean masks (1.0 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return 1.0 if union == 0 else float(np.logical_and(pred, gt).sum() / union)


def lerf_query_metrics(ious: np.ndarray, thresholds: tuple[float, ...] = (0.25, 0.5)) -> dict[str, float]:
    """LERF protocol over text queries: mIoU and mAcc@t = fraction of queries whose mask IoU exceeds t."""
    ious = np.asarray(ious, dtype=np.float64)
    out = {"mIoU": float(ious.mean())}
    out.update({f"mAcc@{t}": float((ious > t).mean()) for t in thresholds})
    return out


def localization_hit(relevance: np.ndarray, gt: np.ndarray) -> bool:
    """LERF localization: the pixel of highest relevance [H,W] lies inside the tight box of the GT mask [H,W]
    (first pixel in row-major order on ties; an empty GT mask is a miss)."""
    ys, xs = np.nonzero(gt)
    if ys.size == 0:
        return False
    y, x = np.unravel_index(int(np.argmax(relevance)), relevance.shape)
    return bool(ys.min() <= y <= ys.max() and xs.min() <= x <= xs.max())
