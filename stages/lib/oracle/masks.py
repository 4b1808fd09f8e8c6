"""Oracle masks: ground-truth pieces per view, corrupted like a real segmenter would be."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from stages.lib.mask_levels import LEVELS, Mask
from stages.lib.oracle.pieces import piece_ids, piece_maps
from stages.lib.scene import SceneData


@dataclass
class MaskCorruption:
    """Per-view, per-mask corruption, drawn independently in every view (so it breaks multi-view consistency).

    under_segment: fraction of masks merged in pairs with a touching mask of their level (fewer if too few touch);
    over_segment: probability that a mask is cut in two by a random line through its centroid;
    boundary_jitter: pixels by which each mask is dilated or eroded (fair coin per mask);
    dropout: probability that a mask is missing (its pixels stay unlabelled unless another level covers them).
    Applied in this order. Masks smaller than ``min_area`` pixels are never produced.
    """

    under_segment: float = 0.0
    over_segment: float = 0.0
    boundary_jitter: int = 0
    dropout: float = 0.0
    min_area: int = 4

    def __post_init__(self) -> None:
        for name in ("under_segment", "over_segment", "dropout"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"mask corruption {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.boundary_jitter < 0:
            raise ValueError("mask corruption boundary_jitter must be >= 0")


def clean_masks(scene: SceneData, view: int, level: str, axes: dict) -> list[Mask]:
    """The ground-truth pieces of one view at one level, one mask per piece."""
    return piece_masks(piece_ids(scene, view, level, axes), level)


def view_clean_masks(scene: SceneData, view: int, levels: list[str], axes: dict) -> dict[str, list[Mask]]:
    """``clean_masks`` of several levels of one view (``piece_maps``: one back-projection for all of them)."""
    return {level: piece_masks(ids, level) for level, ids in piece_maps(scene, view, levels, axes).items()}


def piece_masks(ids: np.ndarray, level: str) -> list[Mask]:
    """One mask per piece of a piece-id map at ``level``, in id order."""
    boxes = ndimage.find_objects(ids + 1)  # piece k's box at index k
    out = []
    for k in np.unique(ids[ids >= 0]):
        seg = np.zeros(ids.shape, bool)
        seg[boxes[k]] = ids[boxes[k]] == k
        out.append(Mask.inside(seg, boxes[k], level=LEVELS.index(level), source_id=int(k)))
    return out


def corrupt_masks(masks: list[Mask], c: MaskCorruption, rng: np.random.Generator) -> list[Mask]:
    """Apply under-segmentation, over-segmentation, boundary jitter and dropout (``MaskCorruption``)."""
    masks = _under_segment(masks, c.under_segment, rng)
    masks = [half for m in masks for half in (_split(m, rng) if rng.random() < c.over_segment else [m])]
    if c.boundary_jitter:
        masks = [_jitter(m, c.boundary_jitter, rng) for m in masks]
    masks = [m for m in masks if rng.random() >= c.dropout]
    return [m for m in masks if m.area >= c.min_area]


def oracle_id_order(seed: int) -> Callable[[int], np.ndarray]:
    """A random permutation of each view's mask ids (drawn view after view from ``seed``): per-image segmenters such
    as SAM number their masks independently, so an id names no object across views."""
    rng = np.random.default_rng([seed, 1])
    return lambda n: rng.permutation(n)


def _with_segmentation(m: Mask, seg: np.ndarray, win: tuple[slice, slice]) -> Mask:
    """``m`` with new pixels ``seg``, all inside the window ``win``."""
    return Mask.inside(seg, win, predicted_iou=m.predicted_iou, stability_score=m.stability_score, level=m.level,
                       source_id=m.source_id)


def stochastic_round(x: float, rng: np.random.Generator) -> int:
    """floor(x) or floor(x) + 1, with expectation x."""
    return int(np.floor(x)) + int(rng.random() < x - np.floor(x))


def _under_segment(masks: list[Mask], p: float, rng: np.random.Generator) -> list[Mask]:
    """Merge random touching pairs until about a fraction ``p`` of the masks is merged."""
    if p <= 0:
        return masks
    pairs = stochastic_round(p * len(masks) / 2, rng)
    merged: set[int] = set()
    out: dict[int, Mask] = {}
    for i in rng.permutation(len(masks)):
        if len(out) == pairs:
            break
        if i in merged:
            continue
        win = masks[i].window(1)
        grown = ndimage.binary_dilation(masks[i].segmentation[win])
        touching = [j for j in range(len(masks)) if j != i and j not in merged
                    and np.logical_and(grown, masks[j].segmentation[win]).any()]
        if touching:
            j = touching[int(rng.integers(len(touching)))]
            merged.update((i, j))
            (ya, yb), (xa, xb) = ((masks[i].window()[d], masks[j].window()[d]) for d in (0, 1))
            union = (slice(min(ya.start, yb.start), max(ya.stop, yb.stop)),
                     slice(min(xa.start, xb.start), max(xa.stop, xb.stop)))
            out[i] = _with_segmentation(masks[i], masks[i].segmentation | masks[j].segmentation, union)
    return [out.get(i, m) for i, m in enumerate(masks) if i not in merged or i in out]


def _split(m: Mask, rng: np.random.Generator) -> list[Mask]:
    win = m.window()
    ys, xs = np.nonzero(m.segmentation[win])
    ys, xs = ys + win[0].start, xs + win[1].start
    angle = rng.uniform(0, np.pi)
    yy, xx = np.mgrid[win]
    side = (xx - xs.mean()) * np.cos(angle) + (yy - ys.mean()) * np.sin(angle) > 0
    a, b = np.zeros_like(m.segmentation), np.zeros_like(m.segmentation)
    a[win], b[win] = m.segmentation[win] & side, m.segmentation[win] & ~side
    if not a.any() or not b.any():
        return [m]
    return [_with_segmentation(m, a, win), _with_segmentation(m, b, win)]


def _jitter(m: Mask, radius: int, rng: np.random.Generator) -> Mask:
    """Dilate or erode by ``radius`` (fair coin); a mask that erosion would erase is dilated instead. Both work
    inside the box grown by ``radius``: nothing beyond it can change."""
    win = m.window(radius)
    seg = ndimage.binary_erosion(m.segmentation[win], iterations=radius) if rng.random() < 0.5 else None
    if seg is None or not seg.any():
        seg = ndimage.binary_dilation(m.segmentation[win], iterations=radius)
    out = np.zeros_like(m.segmentation)
    out[win] = seg
    return _with_segmentation(m, out, win)
