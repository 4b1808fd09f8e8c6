"""From raw 2D masks to per-level label maps: filtering, redundancy removal, level merging, painting.

Shared by every masks variant: LangSplat's three levels (subpart / part / whole), CCL-LGS's two merged
levels (subpart+part, whole+part), OpenInsGaussian's whole level and SAGA's keep-everything list.
A label map is non-overlapping: each pixel carries at most one mask id (-1 none).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

LEVELS = ("subpart", "part", "whole")


@dataclass
class Mask:
    """One binary mask with SAM's quality scores; ``level`` indexes ``LEVELS`` (-1: not level-resolved).

    ``source_id`` is the oracle's ground-truth piece id (-1 for masks of a real model).
    """

    segmentation: np.ndarray
    predicted_iou: float = 1.0
    stability_score: float = 1.0
    level: int = -1
    source_id: int = -1

    @functools.cached_property
    def area(self) -> int:
        """Pixel count (computed once: a mask's segmentation is never changed in place)."""
        return int(self.segmentation.sum())

    @functools.cached_property
    def box(self) -> tuple[int, int, int, int]:
        """Half-open row and column range (y0, y1, x0, x1) of the pixels (``_box``)."""
        return _box(self.segmentation)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """x, y, w, h of the tight box (zeros for an empty mask)."""
        y0, y1, x0, x1 = self.box
        return (float(x0), float(y0), float(x1 - x0), float(y1 - y0))

    @classmethod
    def inside(cls, segmentation: np.ndarray, win: tuple[slice, slice], **fields) -> "Mask":
        """A mask whose pixels all lie in the window ``win``: its area and box are counted there only."""
        m = cls(segmentation, **fields)
        y0, y1, x0, x1 = _box(segmentation[win])
        dy, dx = win[0].start or 0, win[1].start or 0
        m.__dict__.update(area=int(segmentation[win].sum()),
                          box=(y0 + dy, y1 + dy, x0 + dx, x1 + dx) if y1 > y0 else (0, 0, 0, 0))
        return m

    def window(self, margin: int = 0) -> tuple[slice, slice]:
        """The box grown by ``margin`` pixels and clipped to the image: where every operation on the mask that
        reaches at most ``margin`` pixels beyond it gives the same result as on the whole image."""
        y0, y1, x0, x1 = self.box
        h, w = self.segmentation.shape
        return slice(max(y0 - margin, 0), min(y1 + margin, h)), slice(max(x0 - margin, 0), min(x1 + margin, w))

    def paint(self, target: np.ndarray, value: int) -> None:
        """``target[segmentation] = value``, touching only the box."""
        win = self.window()
        target[win][self.segmentation[win]] = value

    @property
    def score(self) -> float:
        """The ranking score used for redundancy removal: predicted IoU x stability."""
        return float(self.predicted_iou * self.stability_score)


@dataclass
class LevelFilter:
    """Thresholds of redundant-mask removal (LangSplat / CCL-LGS): quality gates, then overlap suppression.

    A mask is dropped when ``intersection / min(area_a, area_b)`` with an already kept, better-scoring mask
    exceeds ``max_overlap`` (inner-overlap suppression, stricter than IoU for nested masks).
    """

    min_predicted_iou: float = 0.7
    min_stability: float = 0.85
    max_overlap: float = 0.8
    min_area: int = 1


def filter_redundant(masks: list[Mask], rule: LevelFilter) -> list[Mask]:
    """Keep masks passing the quality gates, best score first, suppressing ones that overlap a kept mask."""
    candidates = [m for m in masks if m.predicted_iou >= rule.min_predicted_iou
                  and m.stability_score >= rule.min_stability and m.area >= rule.min_area]
    candidates.sort(key=lambda m: m.score, reverse=True)
    kept: list[Mask] = []
    boxes = np.zeros((0, 4), np.int64)
    for m in candidates:
        y0, y1, x0, x1 = m.box
        meets = ((np.maximum(boxes[:, 0], y0) < np.minimum(boxes[:, 1], y1))
                 & (np.maximum(boxes[:, 2], x0) < np.minimum(boxes[:, 3], x1)))
        if all(_inner_overlap(m, kept[k]) <= rule.max_overlap for k in np.flatnonzero(meets)):
            kept.append(m)
            boxes = np.vstack([boxes, m.box])
    return kept


def _box(seg: np.ndarray) -> tuple[int, int, int, int]:
    """Half-open row and column range (y0, y1, x0, x1) of a mask's pixels; empty masks give an empty range."""
    rows, cols = np.flatnonzero(seg.any(1)), np.flatnonzero(seg.any(0))
    if rows.size == 0:
        return (0, 0, 0, 0)
    return (int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1)


def _inner_overlap(a: Mask, b: Mask) -> float:
    """intersection / min(area_a, area_b), counted only inside the two boxes' intersection."""
    y0, y1 = max(a.box[0], b.box[0]), min(a.box[1], b.box[1])
    x0, x1 = max(a.box[2], b.box[2]), min(a.box[3], b.box[3])
    if y0 >= y1 or x0 >= x1:
        return 0.0
    inter = np.logical_and(a.segmentation[y0:y1, x0:x1], b.segmentation[y0:y1, x0:x1]).sum()
    return float(inter / max(min(a.area, b.area), 1))


def paint_label_map(masks: list[Mask], shape: tuple[int, int], keep_hidden: bool = False
                    ) -> tuple[np.ndarray, list[Mask]]:
    """Non-overlapping label map: masks painted largest first so smaller ones stay visible on top.

    Returns the map (id = index into the returned list, -1 none) and the listed masks in id order: those that
    kept at least one pixel, or all of them with ``keep_hidden`` (list mode).
    """
    order = sorted(masks, key=lambda m: m.area, reverse=True)
    painted = np.full(shape, -1, dtype=np.int32)
    for i, m in enumerate(order):
        m.paint(painted, i)
    if keep_hidden:
        return painted, order
    present = np.unique(painted[painted >= 0])
    relabel = np.full(len(order) + 1, -1, dtype=np.int32)
    relabel[present] = np.arange(len(present), dtype=np.int32)
    return relabel[painted], [order[i] for i in present]


def select_levels(masks: list[Mask], levels: dict[str, list[str]], rule: LevelFilter,
                  keep_all: bool = False) -> list[list[Mask]]:
    """One mask list per output level (LangSplat levels, CCL-LGS Sec. 3.2 merged levels, or SAGA's list).

    Each output level pools the masks of its member SAM levels (masks without a level join every output level),
    then drops redundant ones (``filter_redundant``) unless ``keep_all``. Masks are pooled in the order the
    members are listed, so among equal scores (oracle masks) the first member wins: {whole+part: [whole, part]}
    keeps wholes where they exist.
    """
    out = []
    for members in levels.values():
        pooled = [m for m in masks if m.level < 0] + [m for lv in members for m in masks if m.level == LEVELS.index(lv)]
        out.append(pooled if keep_all else filter_redundant(pooled, rule))
    return out
