"""Pinhole cameras of a scene and the expected z-depth of trained Gaussians seen from them: the depth that replaces
sensor depth where a scene has none (SAGA's mask scales, Eq. 2, and prompt scales; SAS's occlusion test, Sec. 3.1).
Rendering goes through ``stages.lib.render`` (gsplat on CUDA tensors, the PyTorch compositor on the CPU)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stages.lib.gaussians import activated, load_gaussians
from stages.lib.render import render


@dataclass
class Camera:
    """One pinhole view: world-to-camera [4,4], intrinsics [3,3], image size."""

    world_to_camera: np.ndarray
    intrinsics: np.ndarray
    width: int
    height: int


def activated_geometry(g: object) -> dict[str, Tensor]:
    """The activated geometry (means, quats, scales, opacities) of anything carrying those attributes."""
    return {k: getattr(g, k) for k in ("means", "quats", "scales", "opacities")}


def load_geometry(path: str | Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    """The activated geometry (means, quats, scales, opacities) of a ``gaussians`` store."""
    params, _ = load_gaussians(path, device)
    return {k: v for k, v in activated(params).items() if k != "colors"}


@torch.no_grad()
def rendered_depth(geometry: dict[str, Tensor], camera: Camera, min_alpha: float = 0.5) -> Tensor:
    """Expected z-depth [H,W] of a view of activated Gaussians, 0 where the rendered opacity is below ``min_alpha``."""
    means = geometry["means"]
    viewmat = torch.from_numpy(camera.world_to_camera).float().to(means.device)[None]
    k = torch.from_numpy(camera.intrinsics).float().to(means.device)[None]
    d, alpha, _ = render(means, geometry["quats"], geometry["scales"], geometry["opacities"], means[:, :1] * 0,
                         viewmat, k, camera.width, camera.height, sh_degree=None, render_mode="ED")
    return torch.where(alpha[0, ..., 0] >= min_alpha, d[0, ..., 0], 0.0)
