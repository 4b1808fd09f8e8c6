"""IDR / NeuS object captures (DTU, BlendedMVS): ``cameras_sphere.npz``, ``image(s)/`` and ``mask/``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.linalg import rq

from stages.lib.readers.images import (
    check_factor,
    check_intrinsics,
    check_pose,
    check_same_size,
    colour_points,
    downscale_area,
    downscale_nearest,
    every_nth_test,
    integer_centres_to_ours,
    list_images,
    load_image,
    load_mask,
    parallel_map,
    random_points_in_sphere,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError


def decompose_projection(P: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Split a 3x4 projection ``P ~ K [R | t]`` into ``K`` (upper triangular, positive diagonal,
    ``K[2,2] = 1``) and a rigid 4x4 world-to-camera ``[R | t]`` (``det R = +1``); ``P`` is defined up to
    scale, including its sign, which is fixed so that ``det R = +1`` (scipy's RQ decomposition)."""
    P = np.asarray(P, np.float64)[:3, :4]
    M = P[:, :3]
    det = np.linalg.det(M)
    if not np.isfinite(det) or abs(det) < 1e-12 * max(1.0, np.abs(M).max() ** 3):
        raise ValueError("the 3x3 part of the projection matrix is singular")
    if det < 0:
        P, M = -P, -M
    K, R = rq(M)  # M = K R, K upper triangular, R orthonormal
    signs = np.sign(np.diag(K))
    signs[signs == 0] = 1.0
    K, R = K * signs[None, :], signs[:, None] * R  # (K D)(D R) with D = diag(signs), D^2 = I
    t = np.linalg.solve(K, P[:, 3])
    K = K / K[2, 2]
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = R, t
    return K, w2c


def _index(p: Path) -> int | None:
    digits = re.findall(r"\d+", p.stem)
    return int(digits[-1]) if digits else None


def _indexed_files(folder: Path) -> dict[int, Path]:
    out: dict[int, Path] = {}
    for p in list_images(folder):
        i = _index(p)
        if i is None:
            raise SceneError(f"{p}: no view index in the file name (expected e.g. 000004.png)")
        if i in out:
            raise SceneError(f"{folder}: files {out[i].name} and {p.name} have the same view index {i}")
        out[i] = p
    return out


def read_idr(path: str | Path, *, cameras_file: str = "cameras_sphere.npz", images_dir: str | None = None,
             mask_dir: str = "mask", test_every: int = 8, mask_threshold: int = 127, downscale: int = 1,
             max_views: int | None = None, num_random_points: int = 100_000, sphere_radius: float = 1.0,
             seed: int = 0) -> SceneData:
    """Read an IDR/NeuS scene.

    ``world_mat_<i>`` (projection K[R|t]) times ``scale_mat_<i>`` (identity when absent) gives the
    projection in the normalised frame, where the object lies in the unit sphere; it is decomposed into
    ``K`` and an OpenCV world-to-camera. Images (``images_dir``, default ``image`` or ``images``) and masks
    (``mask_dir``; optional) are matched to cameras by the integer in their file names (``000004.png`` and
    ``004.png`` are both view 4), so a subset of the views may be present. Masks: grey ``> mask_threshold``
    -> ``foreground`` (downscaled nearest). Of the present views (sorted by index) view ``k`` is a test view
    iff ``k % test_every == 0``. Point cloud: random points in the sphere of ``sphere_radius`` coloured from
    the first training view each projects into. Pixel centres: IDR/NeuS cast rays through integer pixel
    coordinates (DTU's calibration convention), so the principal point moves by +0.5 to ours.
    """
    root = Path(path)
    factor = check_factor(downscale)
    cam_path = root / cameras_file
    if not cam_path.is_file():
        raise SceneError(f"{cam_path}: camera file does not exist")
    try:
        with np.load(cam_path) as npz:
            cams = {k: np.asarray(npz[k], np.float64) for k in npz.files}
    except Exception as exc:  # zip / pickle / format errors
        raise SceneError(f"{cam_path}: not a readable .npz file ({exc})") from exc

    if images_dir is None:
        images_dir = next((d for d in ("image", "images") if (root / d).is_dir()), "image")
    img_folder = root / images_dir
    if not img_folder.is_dir():
        raise SceneError(f"{img_folder}: image folder does not exist")
    images_by_index = _indexed_files(img_folder)
    if not images_by_index:
        raise SceneError(f"{img_folder}: no images")
    indices = sorted(images_by_index)

    Ks, w2cs = [], []
    for i in indices:
        key = f"world_mat_{i}"
        if key not in cams:
            raise SceneError(f"{cam_path}: no {key} for image {images_by_index[i]}")
        P = cams[key]
        S = cams.get(f"scale_mat_{i}", np.eye(4))
        if P.shape not in ((3, 4), (4, 4)) or S.shape != (4, 4):
            raise SceneError(f"{cam_path}: {key} / scale_mat_{i} have shapes {P.shape} / {S.shape}")
        if not (np.isfinite(P).all() and np.isfinite(S).all()):
            raise SceneError(f"{cam_path}: {key} or scale_mat_{i} contains NaN or inf (intrinsics/pose of view {i})")
        proj = P[:3, :4] @ S
        try:
            K, w2c = decompose_projection(proj)
        except ValueError as exc:
            raise SceneError(f"{cam_path}: {key} @ scale_mat_{i}: {exc}") from exc
        Ks.append(integer_centres_to_ours(check_intrinsics(K, f"{cam_path}: {key}")))
        w2cs.append(check_pose(w2c, f"{cam_path}: {key}", "decomposed pose"))
    mask_folder = root / mask_dir
    masks_by_index = _indexed_files(mask_folder) if mask_folder.is_dir() else None
    if masks_by_index is not None:
        missing = [images_by_index[i].name for i in indices if i not in masks_by_index]
        if missing:
            raise SceneError(f"{mask_folder}: no mask for image(s) {missing} (masks are matched by the index "
                             f"in the file name)")

    is_test_all = every_nth_test(len(indices), test_every)
    keep = select_views(is_test_all, max_views)

    def load(k: int):
        i = indices[k]
        img = load_image(images_by_index[i])[..., :3]
        mask = None
        if masks_by_index is not None:
            mask = load_mask(masks_by_index[i], mask_threshold)
            if mask.shape != img.shape[:2]:
                raise SceneError(f"{masks_by_index[i]}: mask is {mask.shape[1]}x{mask.shape[0]} but image "
                                 f"{images_by_index[i].name} is {img.shape[1]}x{img.shape[0]}")
            mask = downscale_nearest(mask, factor)
        return downscale_area(img, factor), mask, img.shape[:2]

    loaded = parallel_map(load, list(keep))
    check_same_size([size for _, _, size in loaded], [images_by_index[indices[k]] for k in keep])
    images = np.stack([im for im, _, _ in loaded])
    foreground = np.stack([m for _, m, _ in loaded]) if masks_by_index is not None else None
    intrinsics = scale_intrinsics(np.stack([Ks[k] for k in keep]), 1 / factor)
    w2c, is_test = np.stack([w2cs[k] for k in keep]), is_test_all[keep]
    xyz = random_points_in_sphere(num_random_points, sphere_radius, seed=seed)
    train = np.where(~is_test)[0]
    rgb = colour_points(xyz, images, intrinsics, w2c, train if len(train) else None, seed)
    first = indices[keep[0]]
    return SceneData(
        images=images, intrinsics=intrinsics, world_to_camera=w2c, is_test=is_test, points_xyz=xyz, points_rgb=rgb,
        image_names=[images_by_index[indices[k]].name for k in keep], source=str(root), foreground=foreground,
        extra_attrs={"camera_indices": [int(indices[k]) for k in keep],
                     "scale_mat": cams.get(f"scale_mat_{first}", np.eye(4)).tolist()},
    ).validate()
