"""Annotation-free model capability (SAS Sec. 3.2, Eq. 3-5): a model's capability for class j is the mean IoU of
its mask of class j against the pseudo masks of the m images synthesised for class j.

Our reading of "mIoU(a, b) between two binary masks": the IoU of the two foreground masks (the mean in Eq. 3 runs
over the m images). A class without any pseudo mask has no measured capability (NaN in the table); the fusion fills
it with the model's mean capability over the measured classes, so such a class favours neither model.
"""

from __future__ import annotations

import numpy as np


def binary_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two boolean masks (1 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


class CapabilityAccumulator:
    """Eq. 3-4 over a stream of (class, pseudo mask, each model's prediction) samples."""

    def __init__(self, num_models: int, num_classes: int) -> None:
        self.iou_sum = np.zeros((num_models, num_classes), np.float64)
        self.images = np.zeros(num_classes, np.int64)

    def add(self, cls: int, pseudo_mask: np.ndarray, predictions: list[np.ndarray]) -> None:
        """One synthesised image of class ``cls``: each model's per-pixel class map [H, W] against its pseudo mask."""
        if len(predictions) != self.iou_sum.shape[0]:
            raise ValueError(f"{len(predictions)} predictions for {self.iou_sum.shape[0]} models")
        for m, pred in enumerate(predictions):
            self.iou_sum[m, cls] += binary_iou(pred == cls, pseudo_mask)
        self.images[cls] += 1

    def table(self) -> np.ndarray:
        """[models, classes] S_j^model = mean IoU over the class's images (Eq. 3-5); NaN for unseen classes."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.images > 0, self.iou_sum / np.maximum(self.images, 1), np.nan).astype(np.float32)


def filled(capability: np.ndarray) -> np.ndarray:
    """A capability table [models, classes] with each model's unmeasured (NaN) classes set to its measured mean
    (0.5 for a model without any measured class)."""
    out = capability.astype(np.float64).copy()
    for row in out:
        measured = ~np.isnan(row)
        row[~measured] = row[measured].mean() if measured.any() else 0.5
    return out
