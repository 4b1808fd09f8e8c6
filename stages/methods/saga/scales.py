"""Mask 3D scales (SAGA Eq. 2, after GARField) and their per-scene normalisation to [0, 1].

A mask's pixels are back-projected with the rendered depth of the trained Gaussians; its scale is
s_M = 2 sqrt(std(X)^2 + std(Y)^2 + std(Z)^2) of the resulting points (population std).
Our reading of the normalisation (the paper only says the gate takes s in [0, 1]): the empirical distribution
function of all mask scales of the scene, s -> F(s), stored as ``NUM_KNOTS`` quantile knots and applied by linear
interpolation, so the training scales are uniform in [0, 1] and a metric scale outside the observed range clamps
to 0 or 1.
"""

from __future__ import annotations

import numpy as np

NUM_KNOTS = 101


def backproject(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """World points [n,3] of the mask's pixels with valid (> 0, finite) z-depth; pixel centres at (u + 0.5, v + 0.5)."""
    v, u = np.nonzero(mask & np.isfinite(depth) & (depth > 0))
    z = depth[v, u].astype(np.float64)
    k = intrinsics.astype(np.float64)
    x = (u + 0.5 - k[0, 2]) / k[0, 0] * z
    y = (v + 0.5 - k[1, 2]) / k[1, 1] * z
    cam = np.stack([x, y, z], axis=1)
    c2w = np.linalg.inv(world_to_camera.astype(np.float64))
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def mask_scale(points: np.ndarray) -> float:
    """Eq. 2: 2 * sqrt(std(X)^2 + std(Y)^2 + std(Z)^2); NaN without points."""
    if len(points) == 0:
        return float("nan")
    return float(2.0 * np.sqrt(np.var(points, axis=0).sum()))


def view_mask_scales(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                     masks: np.ndarray, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 2 scale [m] and back-projected point count [m] of every mask [m,H,W] of one view (NaN under ``min_points``)."""
    scales = np.full(len(masks), np.nan, dtype=np.float64)
    counts = np.zeros(len(masks), dtype=np.int64)
    for i, mask in enumerate(masks):
        pts = backproject(depth, intrinsics, world_to_camera, mask)
        counts[i] = len(pts)
        if len(pts) >= min_points:
            scales[i] = mask_scale(pts)
    return scales, counts


def scale_knots(scales: np.ndarray, num_knots: int = NUM_KNOTS) -> np.ndarray:
    """Quantile knots [num_knots] of the finite scales (the per-scene normaliser); error when there are none."""
    finite = np.asarray(scales, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        raise ValueError("no mask has a finite 3D scale (no rendered depth inside any mask)")
    return np.quantile(finite, np.linspace(0.0, 1.0, num_knots))


def normalise_scales(scales: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Empirical-CDF normalisation to [0, 1] by the knots (NaN stays NaN); equal knots share their mean level."""
    s = np.asarray(scales, dtype=np.float64)
    levels = np.linspace(0.0, 1.0, len(knots))
    unique, inverse = np.unique(knots, return_inverse=True)
    unique_levels = np.bincount(inverse, weights=levels) / np.bincount(inverse)
    if len(unique) == 1:
        return np.where(np.isfinite(s), 0.5, np.nan)
    out = np.interp(s, unique, unique_levels)
    return np.where(np.isfinite(s), out, np.nan)
