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

    persistent: merges and splits are decided once per ground-truth piece for the whole scene instead of per view,
    as a segmenter that errs the same way on an object in every view (SAM lumping a cup with its saucer): a piece
    is prone to merging with probability ``under_segment``; a prone piece takes as its partner a random unpaired piece
    it touches in the first view where it touches one, and the pair is merged in every view where both appear and
    touch (so fewer masks per view are
    merged than ``under_segment`` says: only pairs that touch in the view). A piece is cut with probability
    ``over_segment``, in every view, along an image direction fixed per piece. Jitter and dropout stay per view.
    """

    under_segment: float = 0.0
    over_segment: float = 0.0
    boundary_jitter: int = 0
    dropout: float = 0.0
    min_area: int = 4
    persistent: bool = False

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


class PersistentErrors:
    """The scene-wide choices of ``MaskCorruption.persistent``: which pieces merge with which partner, which are cut
    and along which direction. Each piece's draws come from its own generator (``seed``, level, piece id), so they do
    not depend on the order in which views or masks are visited; only a partner is chosen in the first view where a
    paired piece touches an unpaired one."""

    def __init__(self, c: MaskCorruption, seed: int) -> None:
        self.c, self.seed = c, seed
        self.partner: dict[tuple[int, int], tuple[int, int]] = {}
        self._drawn: dict[tuple[int, int], np.ndarray] = {}

    def _draws(self, m: Mask) -> np.ndarray:
        """Three uniform draws of a piece (pairing, cutting, cut direction), drawn once per piece."""
        key = (m.level, m.source_id)
        if key not in self._drawn:
            self._drawn[key] = np.random.default_rng([self.seed, *key]).random(3)
        return self._drawn[key]

    def merge(self, masks: list[Mask], rng: np.random.Generator) -> list[Mask]:
        """Pair the view's unpaired prone pieces (probability under_segment), in mask order, each with a random
        touching unpaired piece, and merge every pair whose two pieces are both in the view and touch."""
        key = [(m.level, m.source_id) for m in masks]
        at = {k: i for i, k in enumerate(key)}
        pairs = []
        for i, m in enumerate(masks):
            partner = self.partner.get(key[i])
            if partner is None and self._draws(m)[0] >= self.c.under_segment:
                continue
            if partner is not None and (partner not in at or at[partner] < i):
                continue  # its partner is not in the view, or the pair was met from the partner's side
            touching = _touching(masks, i, set())
            if partner is None:
                free = [j for j in touching if key[j] not in self.partner]
                if not free:
                    continue
                j = free[int(rng.integers(len(free)))]
                self.partner[key[i]], self.partner[key[j]] = key[j], key[i]
                pairs.append((min(i, j), max(i, j)))
            elif at[partner] in touching:
                pairs.append((i, at[partner]))
        return _merge_pairs(masks, pairs)

    def cut(self, m: Mask) -> list[Mask]:
        """The piece cut in two along its own direction when it draws a cut (probability over_segment)."""
        _, cut, direction = self._draws(m)
        return _split(m, angle=direction * np.pi) if cut < self.c.over_segment else [m]


def corrupt_masks(masks: list[Mask], c: MaskCorruption, rng: np.random.Generator,
                  persistent: PersistentErrors | None = None) -> list[Mask]:
    """Apply under-segmentation, over-segmentation, boundary jitter and dropout (``MaskCorruption``); with
    ``c.persistent`` the merges and cuts are ``persistent``'s scene-wide choices."""
    if c.persistent:
        if persistent is None:
            raise ValueError("persistent mask corruption needs the scene's PersistentErrors")
        masks = [half for m in persistent.merge(masks, rng) for half in persistent.cut(m)]
    else:
        masks = _under_segment(masks, c.under_segment, rng)
        masks = [half for m in masks for half in (_split(m, rng.uniform(0, np.pi)) if rng.random() < c.over_segment
                                                  else [m])]
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


def _touching(masks: list[Mask], i: int, excluded: set[int]) -> list[int]:
    """Indices of the masks (not in ``excluded``) that touch mask i (4-neighbourhood)."""
    win = masks[i].window(1)
    grown = ndimage.binary_dilation(masks[i].segmentation[win])
    return [j for j in range(len(masks)) if j != i and j not in excluded
            and np.logical_and(grown, masks[j].segmentation[win]).any()]


def _merge_pairs(masks: list[Mask], pairs: list[tuple[int, int]]) -> list[Mask]:
    """Each pair (i, j) merged into one mask at i's place (the pairs are disjoint)."""
    out: dict[int, Mask] = {}
    for i, j in pairs:
        (ya, yb), (xa, xb) = ((masks[i].window()[d], masks[j].window()[d]) for d in (0, 1))
        union = (slice(min(ya.start, yb.start), max(ya.stop, yb.stop)),
                 slice(min(xa.start, xb.start), max(xa.stop, xb.stop)))
        out[i] = _with_segmentation(masks[i], masks[i].segmentation | masks[j].segmentation, union)
    gone = {j for _, j in pairs}
    return [out.get(i, m) for i, m in enumerate(masks) if i not in gone]


def _under_segment(masks: list[Mask], p: float, rng: np.random.Generator) -> list[Mask]:
    """Merge random touching pairs until about a fraction ``p`` of the masks is merged."""
    if p <= 0:
        return masks
    want = stochastic_round(p * len(masks) / 2, rng)
    merged: set[int] = set()
    pairs: list[tuple[int, int]] = []
    for i in rng.permutation(len(masks)):
        if len(pairs) == want:
            break
        if i in merged:
            continue
        touching = _touching(masks, i, merged)
        if touching:
            j = touching[int(rng.integers(len(touching)))]
            merged.update((i, j))
            pairs.append((int(i), j))
    return _merge_pairs(masks, pairs)


def _split(m: Mask, angle: float) -> list[Mask]:
    """The mask cut in two by the line through its centroid at ``angle`` (radians); unchanged if a side is empty."""
    win = m.window()
    ys, xs = np.nonzero(m.segmentation[win])
    ys, xs = ys + win[0].start, xs + win[1].start
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
