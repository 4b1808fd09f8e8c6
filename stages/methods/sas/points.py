"""The 3D points SAS fuses the 2D predictions onto and the depth of each view for their occlusion test (Sec. 3.1,
after OpenScene): the scan's points and the sensor depth for RGB-D scenes; for a scene without depth, the centres
of the trained RGB Gaussians (the ``train_gs`` store) and each view's rendered expected z-depth
(``stages.lib.rendered_depth``; pixels whose rendered opacity is below ``min_alpha`` have no depth and see nothing).
The ScanNet 3D protocol then labels the scan's GT points by their nearest Gaussian (``NEAREST_GAUSSIAN``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stages.lib.rendered_depth import Camera, load_geometry, rendered_depth
from stages.lib.semantic_metrics import SCAN_POINTS, gaussian_of_points
from stages.lib.store import Store, StoreError

SCAN, GAUSSIANS = "scan", "gaussians"


@dataclass
class FusionPoints:
    """Points [P, 3] of a scene (``source``: SCAN or GAUSSIANS) and the depth of its views; ``geometry``: the
    activated Gaussians whose rendered depth is used (None: the scene's sensor depth)."""

    scene: Store
    xyz: np.ndarray
    source: str
    geometry: dict[str, Tensor] | None = None
    min_alpha: float = 0.5

    def depth(self, view: int) -> np.ndarray:
        """Depth [H, W] of ``view``: the sensor's, else the Gaussians' rendered expected z-depth."""
        if self.geometry is None:
            return self.scene["depth"][view]
        images = self.scene["images"]
        camera = Camera(self.scene["world_to_camera"][view], self.scene["intrinsics"][view], images.shape[2],
                        images.shape[1])
        return rendered_depth(self.geometry, camera, self.min_alpha).cpu().numpy()

    def of_scan_points(self) -> tuple[np.ndarray, str]:
        """Index [P_scan] of the point labelling every scan point, and the 3D protocol: the point itself
        (SCAN_POINTS) or its nearest Gaussian centre (``gaussian_of_points``)."""
        if self.source == SCAN:
            return np.arange(len(self.xyz)), SCAN_POINTS
        return gaussian_of_points(self.scene.load("points_xyz"), self.xyz)


def scan_points(scene: Store) -> FusionPoints:
    """The scan's points with the scene's sensor depth."""
    return FusionPoints(scene, scene.load("points_xyz").astype(np.float64), SCAN)


def gaussian_points(scene: Store, gaussians: str | Path, device: str | torch.device = "cpu",
                    min_alpha: float = 0.5) -> FusionPoints:
    """The Gaussian centres of a ``gaussians`` store with their rendered depth."""
    geometry = load_geometry(gaussians, device)
    return FusionPoints(scene, geometry["means"].cpu().numpy().astype(np.float64), GAUSSIANS, geometry, min_alpha)


def fusion_points(scene: Store, gaussians: str | Path | None, device: str | torch.device = "cpu",
                  min_alpha: float = 0.5) -> FusionPoints:
    """Scan points and sensor depth where the scene has ``depth``, else the Gaussians' centres and rendered depth;
    a scene with neither stops naming the scene file and what is missing."""
    if "depth" in scene:
        return scan_points(scene)
    if gaussians is None:
        raise StoreError(f"{scene.path}: SAS's occlusion test needs the scene's sensor 'depth' or trained RGB "
                         "Gaussians whose rendered depth replaces it (--gaussians; name a train_gs variant in the "
                         "variant's after: block); this scene has no depth and no Gaussians were given")
    return gaussian_points(scene, gaussians, device, min_alpha)
