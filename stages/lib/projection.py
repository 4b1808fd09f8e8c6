"""Where each Gaussian's centre lands in a view: its pixel and depth, the mask that pixel belongs to, and whether
the centre is at the front of the view (not hidden behind another surface).

Proto-SaGa's Eq. 9 (and Gaga's) takes a mask's Gaussians to be those whose projected centre falls in it;
OpenInsGaussian's centre-based leaf purification (``purify_by: centre``) asks the same per view.
"""

from __future__ import annotations

import torch
from torch import Tensor


def project_centres(means: Tensor, viewmat: Tensor, K: Tensor, width: int, height: int,
                    near: float = 0.01) -> tuple[Tensor, Tensor]:
    """u_i of Proto-SaGa's Eq. 9 as a flat pixel index row * W + col ([N] long, -1 behind the camera or outside the
    image) and the camera-space depth z_i [N]. Pixel (row, col) covers [col, col + 1) x [row, row + 1) in image
    coordinates."""
    cam = means @ viewmat[:3, :3].T + viewmat[:3, 3]
    z = cam[:, 2]
    zs = z.clamp_min(near)
    u = K[0, 0] * cam[:, 0] / zs + K[0, 2]
    v = K[1, 1] * cam[:, 1] / zs + K[1, 2]
    col, row = torch.floor(u).long(), torch.floor(v).long()
    inside = (z > near) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
    return torch.where(inside, row * width + col, torch.full_like(col, -1)), z


def mask_of_gaussians(pixel: Tensor, labels: Tensor) -> Tensor:
    """The mask id t with u_i in R_k(t) for every Gaussian (Proto-SaGa Eq. 9), -1 for none: pixel [N], labels
    [H,W] -> [N]."""
    flat = labels.reshape(-1).long()
    return torch.where(pixel >= 0, flat[pixel.clamp_min(0)], torch.full_like(pixel, -1))


def visible_gaussians(pixel: Tensor, depth: Tensor, depth_map: Tensor, margin: float) -> Tensor:
    """Gaussians at the front of a view ([N] bool): projected centre in the image and z_i <= (1 + margin) D(u_i),
    ``depth_map`` [H,W] the view's rendered depth D (0 where nothing is rendered: no Gaussian there counts)."""
    d = depth_map.reshape(-1)[pixel.clamp_min(0)]
    return (pixel >= 0) & (d > 0) & (depth <= (1.0 + margin) * d)
