"""From raw 2D masks to per-level label maps: filtering, redundancy removal, level merging, painting.

Shared by every masks variant: LangSplat's three levels (subpart / part / whole), CCL-LGS's two merged
levels (subpart+part, whole+part), OpenInsGaussian's whole level and SAGA's keep-everything list.
A label map is non-overlapping: each pixel carries at most one mask id (-1 none).
"""

from __future__ import annotations

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

    @property
    def area(self) -> int:
        return int(self.segmentation.sum())

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """x, y, w, h of the tight box (zeros for an empty mask)."""
        ys, xs = np.nonzero(self.segmentation)
        if xs.size == 0:
            return (0.0, 0.0, 0.0, 0.0)
        return (float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1))

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
    for m in candidates:
        if all(_inner_overlap(m.segmentation, k.segmentation) <= rule.max_overlap for k in kept):
            kept.append(m)
    return kept


def _inner_overlap(a: np.ndarray, b: np.ndarray) -> float:
    inter = np.logical_and(a, b).sum()
    return float(inter / max(min(a.sum(), b.sum()), 1))


def paint_label_map(masks: list[Mask], shape: tuple[int, int], keep_hidden: bool = False
                    ) -> tuple[np.ndarray, list[Mask]]:
    """Non-overlapping label map: masks painted largest first so smaller ones stay visible on top.

    Returns the map (id = index into the returned list, -1 none) and the listed masks in id order: those that
    kept at least one pixel, or all of them with ``keep_hidden`` (list mode).
    """
    order = sorted(masks, key=lambda m: m.area, reverse=True)
    painted = np.full(shape, -1, dtype=np.int32)
    for i, m in enumerate(order):
        painted[m.segmentation] = i
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
