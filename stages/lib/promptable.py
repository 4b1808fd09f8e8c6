"""Promptable-segmentation protocols on scenes with ground truth: NVOS (points from scribbles) and SPIn-NeRF
(points inside / outside the reference mask); IoU and pixel accuracy of the rendered mask on a target view.

Our reading for synthetic scenes, which have no hand-drawn scribbles: the positive scribble is the object's core
(pixels at least half the mask's largest inner distance from its border), the negative scribble the band of
pixels 2 to 6 pixels outside the mask. Prompts are drawn with a fixed seed.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import distance_transform_edt

NEGATIVE_BAND = (2.0, 6.0)


def pixel_accuracy(pred: np.ndarray, gt: np.ndarray) -> float:
    """Fraction of pixels where the two boolean masks agree."""
    return float(np.mean(pred.astype(bool) == gt.astype(bool)))


def nvos_scribbles(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) scribbles [H,W] bool of an object mask (see the module docstring)."""
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("cannot draw scribbles for an empty object mask")
    inner = distance_transform_edt(mask)
    positive = inner >= 0.5 * inner.max()
    outer = distance_transform_edt(~mask)
    negative = (outer >= NEGATIVE_BAND[0]) & (outer <= NEGATIVE_BAND[1])
    return positive, negative


def sample_points(region: np.ndarray, n: int, rng: np.random.Generator) -> list[tuple[float, float]]:
    """``n`` pixel centres (x, y) drawn without replacement from a boolean region (fewer if it is smaller)."""
    ys, xs = np.nonzero(region)
    pick = rng.choice(len(xs), size=min(n, len(xs)), replace=False) if len(xs) else np.zeros(0, int)
    return [(float(xs[i]) + 0.5, float(ys[i]) + 0.5) for i in pick]


def nvos_prompts(mask: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """NVOS protocol: positive points from the positive scribble, negative points from the negative one."""
    positive, negative = nvos_scribbles(mask)
    return sample_points(positive, n_pos, rng), sample_points(negative, n_neg, rng)


def spin_prompts(mask: np.ndarray, n_pos: int, n_neg: int, rng: np.random.Generator
                 ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """SPIn-NeRF protocol: positive points inside the reference mask, negative points outside it."""
    mask = mask.astype(bool)
    if not mask.any():
        raise ValueError("cannot draw prompts for an empty object mask")
    return sample_points(mask, n_pos, rng), sample_points(~mask, n_neg, rng)
