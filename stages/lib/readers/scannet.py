"""ScanNet-style RGB-D scans exported by ScanNet's SensReader, plus the labelled ``*_vh_clean_2.labels.ply`` mesh."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np

from stages.lib.readers.images import (
    check_factor,
    check_intrinsics,
    check_pose,
    downscale_area,
    downscale_nearest,
    every_nth_test,
    invert_rigid,
    load_depth_png,
    load_image,
    parallel_map,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError
from stages.lib.semantic_metrics import SCANNET19

# NYU40 id of each ScanNet-19 category, in SCANNET19 order (the ScanNet benchmark's class subset).
NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36)


def nyu40_to_scannet19(labels: np.ndarray) -> np.ndarray:
    """Map NYU40 ids to indices into ``SCANNET19`` (-1 for every other id)."""
    lut = np.full(256, -1, np.int32)
    lut[list(NYU40_IDS)] = np.arange(len(NYU40_IDS), dtype=np.int32)
    labels = np.asarray(labels).astype(np.int64)
    out = np.full(labels.shape, -1, np.int32)
    ok = (labels >= 0) & (labels < len(lut))
    out[ok] = lut[labels[ok]]
    return out


def _read_matrix(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise SceneError(f"{path}: {what} file does not exist")
    try:
        m = np.loadtxt(path, dtype=np.float64)
    except (OSError, ValueError) as exc:
        raise SceneError(f"{path}: cannot parse the {what} as a 4x4 matrix ({exc})") from exc
    if m.shape != (4, 4):
        raise SceneError(f"{path}: {what} must be a 4x4 matrix, got shape {m.shape}")
    return m


def read_mesh_points(ply_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices ``(P,3)`` float32, colours ``(P,3)`` uint8 and NYU40 labels ``(P,)`` of a ScanNet labels mesh."""
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(ply_path))
        vertex = ply["vertex"]
        names = set(vertex.data.dtype.names or ())
    except Exception as exc:  # plyfile raises several types on bad headers / short files
        raise SceneError(f"{ply_path}: cannot read the PLY mesh ({exc})") from exc
    missing = [k for k in ("x", "y", "z", "red", "green", "blue", "label") if k not in names]
    if missing:
        raise SceneError(f"{ply_path}: vertex properties {missing} are missing (have {sorted(names)})")
    xyz = np.stack([vertex[k] for k in ("x", "y", "z")], axis=1).astype(np.float32)
    rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1).astype(np.uint8)
    if not np.isfinite(xyz).all():
        raise SceneError(f"{ply_path}: vertex coordinates contain NaN or inf")
    return xyz, rgb, np.asarray(vertex["label"]).astype(np.int64)


def _frame_id(p: Path) -> int | None:
    return int(p.stem) if re.fullmatch(r"\d+", p.stem) else None


def read_scannet(path: str | Path, *, frame_step: int = 1, test_every: int = 8, downscale: int = 1,
                 max_views: int | None = None, depth_scale: float = 1000.0) -> SceneData:
    """Read a ScanNet export: ``color/<i>.jpg``, ``depth/<i>.png`` (uint16, ``depth_scale`` units per metre),
    ``pose/<i>.txt`` (4x4 camera-to-world, OpenCV axes), ``intrinsic/intrinsic_{color,depth}.txt``
    and one ``*_vh_clean_2.labels.ply`` (vertices = point cloud, NYU40 ``label`` -> ``points_semantic``).

    Frames sorted by their integer id, then every ``frame_step``-th one kept; frames whose pose has
    inf/NaN (ScanNet marks lost tracking that way) are skipped with a warning; of the remaining frames
    every ``test_every``-th (``i % test_every == 0``) is a test view. Depth is resampled to the colour
    image grid with nearest lookup through both intrinsics (same as a nearest resize when the two
    intrinsics are proportional); 0 = no depth. ``depth/`` is optional.
    """
    root = Path(path)
    factor = check_factor(downscale)
    if int(frame_step) != frame_step or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    color_dir, depth_dir, pose_dir = root / "color", root / "depth", root / "pose"
    if not color_dir.is_dir():
        raise SceneError(f"{color_dir}: colour image folder does not exist")
    frames = sorted(((_frame_id(p), p) for p in color_dir.iterdir()
                     if p.suffix.lower() in (".jpg", ".jpeg", ".png") and _frame_id(p) is not None),
                    key=lambda x: x[0])
    if not frames:
        raise SceneError(f"{color_dir}: no colour images named <frame id>.jpg")
    frames = frames[:: int(frame_step)]

    kc_path = root / "intrinsic" / "intrinsic_color.txt"
    K_color = check_intrinsics(_read_matrix(kc_path, "colour intrinsics")[:3, :3], str(kc_path))
    kd_path = root / "intrinsic" / "intrinsic_depth.txt"
    has_depth = depth_dir.is_dir()
    K_depth = check_intrinsics(_read_matrix(kd_path, "depth intrinsics")[:3, :3], str(kd_path)) if has_depth else None

    kept, poses, skipped = [], [], []
    for fid, cpath in frames:
        ppath = pose_dir / f"{cpath.stem}.txt"
        c2w = _read_matrix(ppath, "pose")
        if not np.isfinite(c2w).all():
            skipped.append(fid)
            continue
        check_pose(c2w, str(ppath), "camera-to-world pose")
        kept.append((fid, cpath))
        poses.append(invert_rigid(c2w))
    if skipped:
        warnings.warn(f"{pose_dir}: skipped {len(skipped)} frame(s) whose pose has inf/NaN: "
                      f"{skipped[:10]}{' ...' if len(skipped) > 10 else ''}", stacklevel=2)
    if not kept:
        raise SceneError(f"{pose_dir}: no frame has a finite pose")
    is_test_all = every_nth_test(len(kept), test_every)
    keep = select_views(is_test_all, max_views)
    kept = [kept[i] for i in keep]
    w2c = np.stack([poses[i] for i in keep])

    ply_files = sorted(root.glob("*_vh_clean_2.labels.ply"))
    if len(ply_files) != 1:
        raise SceneError(f"{root}: expected exactly one *_vh_clean_2.labels.ply mesh, found "
                         f"{[p.name for p in ply_files] or 'none'}")
    xyz, rgb, nyu = read_mesh_points(ply_files[0])

    first = load_image(kept[0][1])
    hc, wc = first.shape[:2]
    lookup = None  # colour pixel -> depth pixel (nearest), computed once from both intrinsics

    def load_depth(cpath: Path) -> np.ndarray:
        nonlocal lookup
        d = load_depth_png(depth_dir / f"{cpath.stem}.png", depth_scale)
        if lookup is None or lookup[0] != d.shape:
            v, u = np.meshgrid(np.arange(hc) + 0.5, np.arange(wc) + 0.5, indexing="ij")
            rays = np.stack([u, v, np.ones_like(u)], -1) @ np.linalg.inv(K_color).T
            pix = rays @ K_depth.T
            ud, vd = np.floor(pix[..., 0] / pix[..., 2]).astype(int), np.floor(pix[..., 1] / pix[..., 2]).astype(int)
            ok = (ud >= 0) & (ud < d.shape[1]) & (vd >= 0) & (vd < d.shape[0])
            lookup = (d.shape, downscale_nearest(np.clip(vd, 0, d.shape[0] - 1), factor),
                      downscale_nearest(np.clip(ud, 0, d.shape[1] - 1), factor), downscale_nearest(ok, factor))
        _, vi, ui, ok = lookup
        return np.where(ok, d[vi, ui], 0.0).astype(np.float32)

    def load(item):
        fid, cpath = item
        img = first if cpath == kept[0][1] else load_image(cpath)
        img = img[..., :3]
        if img.shape[:2] != (hc, wc):
            raise SceneError(f"{cpath}: image is {img.shape[1]}x{img.shape[0]}, other frames are {wc}x{hc}")
        return downscale_area(img, factor)

    images = np.stack(parallel_map(load, kept))
    depth = np.stack([load_depth(c) for _, c in kept]) if has_depth else None
    K = scale_intrinsics(K_color, 1 / factor)
    return SceneData(
        images=images, intrinsics=np.repeat(K[None], len(kept), 0), world_to_camera=w2c,
        is_test=is_test_all[keep], points_xyz=xyz, points_rgb=rgb,
        image_names=[f"color/{c.name}" for _, c in kept], source=str(root), categories=list(SCANNET19),
        depth=depth, points_semantic=nyu40_to_scannet19(nyu),
        extra_attrs={"frame_ids": [int(f) for f, _ in kept], "skipped_frames_nonfinite_pose": skipped,
                     "label_mapping": "NYU40 -> ScanNet-19 (NYU40 ids " + ",".join(map(str, NYU40_IDS)) + ")"},
    ).validate()
