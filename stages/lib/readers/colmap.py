"""COLMAP sparse models (``cameras``/``images``/``points3D``, binary or text) read with pycolmap."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from stages.lib.readers.colmap_files import check_model_files
from stages.lib.readers.images import (
    camera_centres,
    check_factor,
    check_intrinsics,
    check_pose,
    check_same_size,
    downscale_area,
    every_nth_test,
    load_image,
    parallel_map,
    pinhole,
    random_points_in_box,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError

# Models whose projection is a pinhole once their distortion parameters are zero.
_PINHOLE_LIKE = {"SIMPLE_PINHOLE", "PINHOLE", "SIMPLE_RADIAL", "RADIAL", "OPENCV", "FULL_OPENCV"}
DISTORTION_TOL = 1e-6


def _camera_matrix(cam, where: str) -> np.ndarray:
    model = cam.model.name
    params = np.asarray(cam.params, np.float64)
    if model not in _PINHOLE_LIKE:
        raise SceneError(f"{where}: camera {cam.camera_id} has model {model}, which is not a pinhole camera; "
                         f"undistort the images first with `colmap image_undistorter` and read its output")
    if not np.isfinite(params).all():
        raise SceneError(f"{where}: camera {cam.camera_id} ({model}): intrinsics contain NaN or inf "
                         f"(params {params.tolist()})")
    extra = params[list(cam.extra_params_idxs())]
    if extra.size and np.abs(extra).max() > DISTORTION_TOL:
        raise SceneError(f"{where}: camera {cam.camera_id} ({model}) has lens distortion {extra.tolist()}; "
                         f"undistort the images first with `colmap image_undistorter` and read its output")
    f_idx, c_idx = list(cam.focal_length_idxs()), list(cam.principal_point_idxs())
    fx, fy = (params[f_idx[0]], params[f_idx[0]]) if len(f_idx) == 1 else (params[f_idx[0]], params[f_idx[1]])
    K = pinhole(fx, fy, params[c_idx[0]], params[c_idx[1]])
    return check_intrinsics(K, f"{where}: camera {cam.camera_id} ({model})")


def _model_file(sparse: Path, stem: str) -> str:
    for ext in (".bin", ".txt"):
        if (sparse / f"{stem}{ext}").is_file():
            return str(sparse / f"{stem}{ext}")
    return str(sparse / stem)


def read_colmap(path: str | Path, *, images_dir: str = "images", sparse_dir: str = "sparse/0", test_every: int = 8,
                downscale: int = 1, max_views: int | None = None, num_random_points: int = 100_000,
                seed: int = 0) -> SceneData:
    """Read ``<path>/<sparse_dir>`` (COLMAP model) and ``<path>/<images_dir>``.

    Cameras must be pinhole (PINHOLE, SIMPLE_PINHOLE, or a radial/OpenCV model whose distortion is ~0).
    Images sorted by name; view ``i`` is a test view iff ``i % test_every == 0``. Images stored at another
    size than the camera (e.g. an ``images_2`` folder) get their intrinsics scaled to the stored size.
    The point cloud is ``points3D`` with its colours (random points around the cameras if it is empty).
    Pixel centres: COLMAP's are at +0.5, like ours, so the intrinsics are taken as they are.
    """
    import pycolmap

    root = Path(path)
    factor = check_factor(downscale)
    sparse = root / sparse_dir
    if not sparse.is_dir():
        raise SceneError(f"{sparse}: COLMAP sparse model folder does not exist")
    check_model_files(sparse)
    try:
        rec = pycolmap.Reconstruction(str(sparse))
    except Exception as exc:  # pycolmap raises ValueError / RuntimeError for missing or corrupt files
        raise SceneError(f"{sparse}: cannot read the COLMAP model ({exc})") from exc
    cameras_file, images_file = _model_file(sparse, "cameras"), _model_file(sparse, "images")

    cams = {cid: _camera_matrix(cam, cameras_file) for cid, cam in rec.cameras.items()}
    cam_size = {cid: (cam.width, cam.height) for cid, cam in rec.cameras.items()}
    records = []
    for _, img in rec.images.items():
        if not img.has_pose:
            warnings.warn(f"{images_file}: image {img.name!r} has no pose (not registered); skipped", stacklevel=2)
            continue
        w2c = np.eye(4)
        w2c[:3, :4] = np.asarray(img.cam_from_world().matrix(), np.float64)
        check_pose(w2c, f"{images_file}: image {img.name!r}")
        records.append((img.name, img.camera_id, w2c))
    if not records:
        raise SceneError(f"{images_file}: no posed images in the COLMAP model")
    records.sort(key=lambda r: r[0])
    is_test_all = every_nth_test(len(records), test_every)
    keep = select_views(is_test_all, max_views)
    records = [records[i] for i in keep]

    def load(rec_):
        name, cid, _ = rec_
        img = load_image(root / images_dir / name)[..., :3]
        h, w = img.shape[:2]
        cw, ch = cam_size[cid]
        sx, sy = w / cw, h / ch
        if abs(sx - sy) > 0.02 * max(sx, sy):
            raise SceneError(f"{root / images_dir / name}: image is {w}x{h} but its camera {cid} in {cameras_file} "
                             f"is {cw}x{ch} (different aspect ratio)")
        K = scale_intrinsics(cams[cid], sx, sy)
        return downscale_area(img, factor), scale_intrinsics(K, 1 / factor), (h, w)

    loaded = parallel_map(load, records)
    check_same_size([size for _, _, size in loaded], [root / images_dir / r[0] for r in records])
    images = np.stack([im for im, _, _ in loaded])
    intrinsics = np.stack([K for _, K, _ in loaded])
    w2c = np.stack([r[2] for r in records])

    if rec.num_points3D() > 0:
        pts = list(rec.points3D.values())
        xyz = np.array([p.xyz for p in pts], np.float32).reshape(-1, 3)
        rgb = np.array([p.color for p in pts], np.uint8).reshape(-1, 3)
        if not np.isfinite(xyz).all():
            raise SceneError(f"{_model_file(sparse, 'points3D')}: 3D points contain NaN or inf")
    else:
        warnings.warn(f"{sparse}: the model has no 3D points; using {num_random_points} random points around "
                      f"the cameras", stacklevel=2)
        c = camera_centres(w2c)
        mid, half = (c.max(0) + c.min(0)) / 2, np.maximum((c.max(0) - c.min(0)) / 2, 1.0) * 1.5
        xyz, rgb = random_points_in_box(num_random_points, mid - half, mid + half, seed)

    return SceneData(
        images=images, intrinsics=intrinsics, world_to_camera=w2c, is_test=is_test_all[keep],
        points_xyz=xyz, points_rgb=rgb, image_names=[r[0] for r in records], source=str(root),
        extra_attrs={"colmap_camera_ids": [int(r[1]) for r in records]},
        random_point_colours=rec.num_points3D() == 0,
    ).validate()
