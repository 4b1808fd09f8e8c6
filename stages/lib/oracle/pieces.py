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
    return piece_maps(scene, view, [level], axes)[level]


def piece_maps(scene: SceneData, view: int, levels: list[str],
               axes: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """``piece_ids`` of several levels of one view, back-projecting and projecting each instance once."""
    inst = scene.gt_instance[view]
    whole = np.where(inst >= 0, inst * IDS_PER_INSTANCE, -1).astype(np.int32)
    out = {level: np.where(whole >= 0, whole + LEVEL_OFFSET[level], -1).astype(np.int32) for level in levels}
    split = [level for level in levels if level != "whole"]
    if not split:
        return out
    xyz = backproject(scene, view).reshape(-1, 3)
    flat = inst.reshape(-1)
    order = np.argsort(flat, kind="stable")  # each instance's pixels in raster order, instance after instance
    ids, starts = np.unique(flat[order], return_index=True)
    for i, pixels in zip(ids, np.split(order, starts[1:])):
        if i < 0 or int(i) not in axes:
            continue
        centre, ax, med = axes[int(i)]
        proj = (xyz[pixels] - centre) @ ax.T
        for level in split:
            piece = (proj[:, 0] > med[0]).astype(np.int32) * (2 if level == "subpart" else 1)
            if level == "subpart":
                piece += (proj[:, 1] > med[1]).astype(np.int32)
            out[level].reshape(-1)[pixels] = i * IDS_PER_INSTANCE + LEVEL_OFFSET[level] + piece
    return out
