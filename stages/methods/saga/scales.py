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


def backproject_view(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray) -> np.ndarray:
    """World point [H,W,3] of every pixel at its z-depth; pixel centres at (u + 0.5, v + 0.5)."""
    h, w = depth.shape
    v, u = np.mgrid[0:h, 0:w]
    z = depth.astype(np.float64)
    k = intrinsics.astype(np.float64)
    cam = np.stack([(u + 0.5 - k[0, 2]) / k[0, 0] * z, (v + 0.5 - k[1, 2]) / k[1, 1] * z, z], axis=-1)
    c2w = np.linalg.inv(world_to_camera.astype(np.float64))
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def valid_depth(depth: np.ndarray) -> np.ndarray:
    """Pixels with a usable depth (finite, > 0)."""
    return np.isfinite(depth) & (depth > 0)


def backproject(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                mask: np.ndarray) -> np.ndarray:
    """World points [n,3] of the mask's pixels with valid depth."""
    return backproject_view(depth, intrinsics, world_to_camera)[mask & valid_depth(depth)]


def mask_scale(points: np.ndarray) -> float:
    """Eq. 2: 2 * sqrt(std(X)^2 + std(Y)^2 + std(Z)^2); NaN without points."""
    if len(points) == 0:
        return float("nan")
    return float(2.0 * np.sqrt(np.var(points, axis=0).sum()))


def view_mask_scales(depth: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                     masks: np.ndarray, min_points: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 2 scale [m] and back-projected point count [m] of every mask [m,H,W] of one view (NaN under
    ``min_points``), from the first and second moments of the view's points (one matrix product per moment)."""
    valid = valid_depth(depth).reshape(-1)
    pts = backproject_view(np.where(valid.reshape(depth.shape), depth, 0.0), intrinsics, world_to_camera)
    pts = pts.reshape(-1, 3)[valid]
    if len(pts):
        pts = pts - pts.mean(0)  # centred: the moments below lose no precision
    w = masks.reshape(len(masks), -1)[:, valid].astype(np.float64)
    counts = w.sum(1)
    n = np.maximum(counts, 1.0)[:, None]
    mean = w @ pts / n
    var = np.clip(w @ (pts * pts) / n - mean**2, 0.0, None)
    scales = 2.0 * np.sqrt(var.sum(1))
    return np.where(counts >= max(min_points, 1), scales, np.nan), counts.astype(np.int64)


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
