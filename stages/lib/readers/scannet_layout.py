"""Write a ``SceneData`` with ground truth as a ScanNet scan, in the layout of ScanNet's release and SensReader export.

What ``read_scannet`` reads back: ``color/<i>.jpg``, ``depth/<i>.png`` (16-bit mm), ``pose/<i>.txt`` (camera-to-world,
``%f`` rows as SensReader writes them; ``-inf`` for frames in ``lost_tracking``), ``intrinsic/{intrinsic,extrinsic}_
{color,depth}.txt`` (integer pixel centres, as ScanNet's), ``label-filt/<i>.png`` (8-bit NYU40 ids),
``instance-filt/<i>.png`` (8-bit ``objectId + 1``), ``<scan>_vh_clean_2.labels.ply``, ``<scan>.aggregation.json``
and ``<scan>_vh_clean_2.0.010000.segs.json`` (each instance's vertices cut into segments of ``segment_size``).
Used for test fixtures and to run synthetic rooms through the ScanNet reader.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import numpy as np
from PIL import Image

from stages.lib.readers.images import invert_rigid, ours_to_integer_centres
from stages.lib.readers.scannet import LABELS_PLY_SUFFIX, NYU40_IDS, SEGS_SUFFIX
from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import SCANNET19


def scannet19_to_nyu40(labels: np.ndarray) -> np.ndarray:
    """ScanNet-19 indices -> NYU40 ids (0 = unannotated for -1)."""
    lut = np.array((0, *NYU40_IDS), np.int64)
    return lut[np.asarray(labels, np.int64) + 1]


def _matrix(path: Path, m: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savetxt(path, np.asarray(m, np.float64), fmt="%f")


def _png(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def _segments(points_instance: np.ndarray, segment_size: int) -> tuple[np.ndarray, dict[int, list[int]]]:
    """Per-vertex segment ids (every instance's vertices, in order, cut into runs of ``segment_size``) and the
    segments of each instance; unannotated vertices get segments of their own."""
    seg = np.zeros(len(points_instance), np.int64)
    groups: dict[int, list[int]] = {}
    next_id = 0
    for inst in np.unique(points_instance):
        idx = np.where(points_instance == inst)[0]
        ids = next_id + np.arange(len(idx)) // segment_size
        seg[idx] = ids
        next_id = int(ids.max()) + 1
        if inst >= 0:
            groups[int(inst)] = sorted(set(ids.tolist()))
    return seg, groups


def _object_labels(scene: SceneData) -> dict[int, str]:
    """Each instance's ScanNet-19 name (majority of its points' labels; "otherfurniture" for none)."""
    out = {}
    for inst in np.unique(scene.points_instance[scene.points_instance >= 0]):
        sem = scene.points_semantic[scene.points_instance == inst]
        sem = sem[sem >= 0]
        out[int(inst)] = SCANNET19[int(np.bincount(sem).argmax())] if sem.size else "otherfurniture"
    return out


def write_scannet_scan(scene: SceneData, root: str | Path, scan: str = "scene0000_00", *,
                       lost_tracking: Iterable[int] = (), segment_size: int = 40, jpeg_quality: int = 95) -> Path:
    """Write ``scene`` (which needs depth, gt_semantic, gt_instance, points_semantic and points_instance) as the
    ScanNet scan ``<root>/<scan>``; frame ``i`` is view ``i``. Returns the scan folder."""
    missing = [n for n in ("depth", "gt_semantic", "gt_instance", "points_semantic", "points_instance")
               if getattr(scene, n) is None]
    if missing:
        raise ValueError(f"{scene.source}: a ScanNet scan needs {missing}")
    if scene.gt_instance.max(initial=-1) > 254 or scene.points_instance.max(initial=-1) > 254:
        raise ValueError("instance-filt images are 8-bit: at most 255 objects (objectId <= 254)")
    out = Path(root) / scan
    lost = set(int(i) for i in lost_tracking)
    K = ours_to_integer_centres(scene.intrinsics[0])
    K4 = np.eye(4)
    K4[:3, :3] = K
    for name, m in (("intrinsic_color", K4), ("intrinsic_depth", K4), ("extrinsic_color", np.eye(4)),
                    ("extrinsic_depth", np.eye(4))):
        _matrix(out / "intrinsic" / f"{name}.txt", m)
    c2w = invert_rigid(scene.world_to_camera.astype(np.float64))
    for i in range(scene.num_views):
        (out / "color").mkdir(parents=True, exist_ok=True)
        Image.fromarray(scene.images[i]).save(out / "color" / f"{i}.jpg", quality=jpeg_quality)
        _png(out / "depth" / f"{i}.png", np.clip(np.rint(scene.depth[i] * 1000.0), 0, 65535).astype(np.uint16))
        _matrix(out / "pose" / f"{i}.txt", np.full((4, 4), -np.inf) if i in lost else c2w[i])
        _png(out / "label-filt" / f"{i}.png", scannet19_to_nyu40(scene.gt_semantic[i]).astype(np.uint8))
        _png(out / "instance-filt" / f"{i}.png", (scene.gt_instance[i] + 1).clip(0, 255).astype(np.uint8))
    _write_mesh(out / f"{scan}{LABELS_PLY_SUFFIX}", scene)
    seg, groups = _segments(scene.points_instance, segment_size)
    (out / f"{scan}{SEGS_SUFFIX}").write_text(json.dumps(
        {"params": {"segMinVerts": str(segment_size)}, "sceneId": scan, "segIndices": seg.tolist()}))
    labels = _object_labels(scene)
    (out / f"{scan}.aggregation.json").write_text(json.dumps({
        "sceneId": f"scannet.{scan}", "appId": "ovgs.synthetic", "segmentsFile": f"scannet.{scan}{SEGS_SUFFIX}",
        "segGroups": [{"id": k, "objectId": oid, "segments": segs, "label": labels[oid]}
                      for k, (oid, segs) in enumerate(sorted(groups.items()))]}))
    return out


def _write_mesh(path: Path, scene: SceneData) -> None:
    """The labels mesh: vertices with colour, alpha and NYU40 ``label`` (no faces are needed by the reader)."""
    from plyfile import PlyData, PlyElement

    n = len(scene.points_xyz)
    vert = np.zeros(n, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"),
                              ("blue", "u1"), ("alpha", "u1"), ("label", "u2")])
    for k, name in enumerate(("x", "y", "z")):
        vert[name] = scene.points_xyz[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vert[name] = scene.points_rgb[:, k]
    vert["alpha"], vert["label"] = 255, scannet19_to_nyu40(scene.points_semantic)
    face = np.zeros(0, dtype=[("vertex_indices", "i4", (3,))])
    PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]).write(str(path))
