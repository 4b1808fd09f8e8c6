"""LLFF forward-facing captures: ``poses_bounds.npy`` plus an ``images_<factor>`` folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.lib.readers.images import (
    check_factor,
    check_intrinsics,
    check_pose,
    check_same_size,
    downscale_area,
    every_nth_test,
    invert_rigid,
    list_images,
    load_image,
    parallel_map,
    pinhole,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError


def llff_to_opencv_c2w(mat34: np.ndarray) -> np.ndarray:
    """An LLFF 3x4 camera-to-world whose rotation columns are the camera's [down, right, backwards]
    axes -> a 4x4 OpenCV camera-to-world (columns [right, down, forward])."""
    m = np.asarray(mat34, np.float64)
    c2w = np.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = m[:, 1], m[:, 0], -m[:, 2], m[:, 3]
    return c2w


def frustum_points(n: int, images: np.ndarray, intrinsics: np.ndarray, world_to_camera: np.ndarray,
                   near_far: np.ndarray, views: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random points inside the frusta of ``views`` between each view's near and far bound (uniform
    in disparity, as forward-facing scenes have most detail near), coloured by the pixel they were cast
    through (seeded)."""
    rng = np.random.default_rng(seed)
    h, w = images.shape[1:3]
    view = rng.choice(np.asarray(views), size=int(n))
    u, v = rng.uniform(0, w, int(n)), rng.uniform(0, h, int(n))
    near, far = near_far[view, 0], near_far[view, 1]
    z = 1.0 / rng.uniform(1.0 / far, 1.0 / near)
    K = intrinsics[view]
    cam = np.stack([(u - K[:, 0, 2]) / K[:, 0, 0] * z, (v - K[:, 1, 2]) / K[:, 1, 1] * z, z], axis=1)
    c2w = invert_rigid(world_to_camera[view])
    xyz = np.einsum("nij,nj->ni", c2w[:, :3, :3], cam) + c2w[:, :3, 3]
    rgb = images[view, v.astype(int).clip(0, h - 1), u.astype(int).clip(0, w - 1)]
    return xyz.astype(np.float32), rgb.astype(np.uint8)


def read_llff(path: str | Path, *, factor: int = 8, test_every: int = 8, downscale: int = 1,
              max_views: int | None = None, num_random_points: int = 100_000, seed: int = 0) -> SceneData:
    """Read ``<path>/poses_bounds.npy`` and ``<path>/images_<factor>`` (``images`` when ``factor == 1``).

    Each row: a 3x5 matrix [R | t | (H, W, f)] (camera-to-world, axes [down, right, backwards], H/W/f
    at full resolution) then the near and far depth bounds. Rows follow the sorted image names; the
    focal length is scaled to the stored image size, the principal point is the image centre (``W/2`` in our
    pixel convention: LLFF's poses come from COLMAP, whose pixel centres are at +0.5 like ours). Poses stay
    in the capture's world frame (no recentring or rescaling). View ``i`` is a test view iff
    ``i % test_every == 0``. Bounds go to ``extra_attrs["near_far"]``. Point cloud: random points in
    the training views' frusta between their bounds, coloured from those views.
    """
    root = Path(path)
    factor, dfactor = check_factor(factor), check_factor(downscale)
    pb_path = root / "poses_bounds.npy"
    if not pb_path.is_file():
        raise SceneError(f"{pb_path}: poses file does not exist")
    try:
        pb = np.load(pb_path)
    except (OSError, ValueError) as exc:
        raise SceneError(f"{pb_path}: not a readable .npy file ({exc})") from exc
    if pb.ndim != 2 or pb.shape[1] != 17:
        raise SceneError(f"{pb_path}: expected an (N, 17) array, got shape {pb.shape}")
    img_dir = root / (f"images_{factor}" if factor > 1 else "images")
    if not img_dir.is_dir():
        have = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith("images"))
        raise SceneError(f"{img_dir}: image folder does not exist (found {have or 'no images* folders'}); "
                         f"choose `factor` to match one")
    files = list_images(img_dir)
    if len(files) != len(pb):
        raise SceneError(f"{pb_path} has {len(pb)} poses but {img_dir} has {len(files)} images; they must match "
                         f"one to one (rows follow the sorted image names)")

    n = len(pb)
    poses = pb[:, :15].reshape(n, 3, 5).astype(np.float64)
    bounds = pb[:, 15:17].astype(np.float64)
    c2w_all = []
    for i in range(n):
        where = f"{pb_path}: row {i} ({files[i].name})"
        hwf = poses[i, :, 4]
        if not np.isfinite(hwf).all() or (hwf <= 0).any():
            raise SceneError(f"{where}: intrinsics (H, W, f) = {hwf.tolist()} must be finite and positive")
        if not np.isfinite(bounds[i]).all() or bounds[i, 0] <= 0 or bounds[i, 1] <= bounds[i, 0]:
            raise SceneError(f"{where}: near/far bounds {bounds[i].tolist()} must be finite with 0 < near < far")
        c2w_all.append(check_pose(llff_to_opencv_c2w(poses[i, :, :4]), where, "pose"))
    w2c_all = invert_rigid(np.stack(c2w_all))
    is_test_all = every_nth_test(n, test_every)
    keep = select_views(is_test_all, max_views)

    def load(i: int):
        img = load_image(files[i])[..., :3]
        h, w = img.shape[:2]
        H, W, f = poses[i, :, 4]
        K = pinhole(f * w / W, f * h / H, w / 2, h / 2)
        check_intrinsics(K, f"{pb_path}: row {i}")
        return downscale_area(img, dfactor), scale_intrinsics(K, 1 / dfactor), img.shape[:2]

    loaded = parallel_map(load, list(keep))
    check_same_size([size for _, _, size in loaded], [files[i] for i in keep])
    images = np.stack([im for im, _, _ in loaded])
    intrinsics = np.stack([K for _, K, _ in loaded])
    w2c, is_test, near_far = w2c_all[keep], is_test_all[keep], bounds[keep]
    train = np.where(~is_test)[0]
    xyz, rgb = frustum_points(num_random_points, images, intrinsics, w2c, near_far,
                              train if len(train) else np.arange(len(keep)), seed)
    return SceneData(
        images=images, intrinsics=intrinsics, world_to_camera=w2c, is_test=is_test, points_xyz=xyz, points_rgb=rgb,
        image_names=[files[i].name for i in keep], source=str(root),
        extra_attrs={"near_far": near_far.tolist(), "llff_factor": factor,
                     "llff_hwf_full_res": poses[keep[0], :, 4].tolist()},
    ).validate()
