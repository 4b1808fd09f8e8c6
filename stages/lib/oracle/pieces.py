"""Ground-truth masks at three granularities: whole = GT instance, part / subpart = the instance split in 3D.

Parts halve an instance by the plane through its median along its first principal axis; subparts halve each
part again along the second axis. The split happens in world space, so a piece keeps its id in every view.
"""

from __future__ import annotations

import numpy as np

from stages.lib.scene import SceneData, SceneError

# Piece ids are unique across levels: instance * 8 + offset, offsets 0 (whole), 1-2 (parts), 3-6 (subparts).
LEVEL_OFFSET = {"whole": 0, "part": 1, "subpart": 3}
IDS_PER_INSTANCE = 8


def backproject(scene: SceneData, view: int) -> np.ndarray:
    """World coordinates [H,W,3] of every pixel of a view from its z-depth."""
    h, w = scene.height, scene.width
    K = scene.intrinsics[view].astype(np.float64)
    v, u = np.meshgrid(np.arange(h) + 0.5, np.arange(w) + 0.5, indexing="ij")
    z = scene.depth[view].astype(np.float64)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1)
    c2w = np.linalg.inv(scene.world_to_camera[view].astype(np.float64))
    return cam @ c2w[:3, :3].T + c2w[:3, 3]


def instance_axes(scene: SceneData) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per instance: (centre, principal axes [2,3], median projections [2]) from its labelled points."""
    if scene.points_instance is None:
        raise SceneError(f"{scene.source}: oracle parts need labelled points (points_instance)")
    axes = {}
    for inst in np.unique(scene.points_instance):
        pts = scene.points_xyz[scene.points_instance == inst].astype(np.float64)
        centre = pts.mean(0)
        if len(pts) < 3:
            axes[int(inst)] = (centre, np.eye(3)[:2], np.zeros(2))
            continue
        _, _, vt = np.linalg.svd(pts - centre, full_matrices=False)
        proj = (pts - centre) @ vt[:2].T
        axes[int(inst)] = (centre, vt[:2], np.median(proj, axis=0))
    return axes


def require_ground_truth(scene: SceneData) -> None:
    """Oracle priors need GT instances, semantics and depth."""
    missing = [n for n in ("gt_instance", "gt_semantic", "depth") if getattr(scene, n) is None]
    if missing:
        raise SceneError(f"{scene.source}: oracle priors need ground truth, but the scene has no {', '.join(missing)}")


def piece_ids(scene: SceneData, view: int, level: str,
              axes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """Globally consistent piece id per pixel at ``level`` (-1 none), unique across levels."""
    inst = scene.gt_instance[view]
    out = np.where(inst >= 0, inst * IDS_PER_INSTANCE + LEVEL_OFFSET[level], -1).astype(np.int32)
    n_axes = {"whole": 0, "part": 1, "subpart": 2}[level]
    if n_axes == 0:
        return out
    xyz = backproject(scene, view)
    for i in np.unique(inst[inst >= 0]):
        if int(i) not in axes:
            continue
        centre, ax, med = axes[int(i)]
        sel = inst == i
        proj = (xyz[sel] - centre) @ ax.T
        piece = (proj[:, 0] > med[0]).astype(np.int32) * (2 if n_axes == 2 else 1)
        if n_axes == 2:
            piece += (proj[:, 1] > med[1]).astype(np.int32)
        out[sel] = i * IDS_PER_INSTANCE + LEVEL_OFFSET[level] + piece
    return out
