"""NeRF-synthetic / Blender ``transforms_<split>.json`` scenes."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from stages.lib.readers.images import (
    IMAGE_SUFFIXES,
    check_factor,
    check_intrinsics,
    check_pose,
    check_same_size,
    composite_downscaled,
    downscale_area,
    invert_rigid,
    load_image,
    parallel_map,
    pinhole,
    random_points_in_box,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError

# OpenGL / Blender camera axes (x right, y up, z backward) -> OpenCV (x right, y down, z forward).
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])


def _number(meta: dict, key: str, where: Path) -> float | None:
    if key not in meta:
        return None
    try:
        value = float(meta[key])
    except (TypeError, ValueError) as exc:
        raise SceneError(f"{where}: {key} must be a number, got {meta[key]!r}") from exc
    if not math.isfinite(value):
        raise SceneError(f"{where}: {key} is {value} (intrinsics contain NaN or inf)")
    return value


def _image_path(root: Path, file_path: str) -> Path:
    p = root / file_path
    return p if p.suffix.lower() in {s.lower() for s in IMAGE_SUFFIXES} else p.with_name(p.name + ".png")


def read_nerf_json(path: str | Path, *, background: Sequence[float] = (1.0, 1.0, 1.0),
                   splits: Sequence[str] = ("train", "test"), downscale: int = 1, max_views: int | None = None,
                   num_random_points: int = 100_000, points_extent: float = 1.3, seed: int = 0) -> SceneData:
    """Read ``<path>/transforms_<split>.json`` for each split; the ``test`` split's frames are the test views.

    ``camera_angle_x`` gives the focal length (``fx = fy = W / 2 / tan(angle/2)``, principal point at the
    image centre; instant-ngp style ``fl_x``/``fl_y``/``cx``/``cy``, given for the stored resolution, override
    it). Pixel centres: Blender renders with the optical axis through the image centre, ``W/2`` in our convention
    (centres at +0.5); instant-ngp / nerfstudio ``cx``/``cy`` use centres at +0.5 too, so nothing is converted.
    ``transform_matrix`` is camera-to-world in the OpenGL/Blender convention. RGBA images are
    composited onto ``background`` (RGB in [0,1]); ``alpha > 0.5`` (after downscaling) is the foreground.
    No point cloud ships with the format: ``num_random_points`` uniform points in
    ``[-points_extent, points_extent]^3`` with random colours (seeded).
    """
    root = Path(path)
    factor = check_factor(downscale)
    background = tuple(float(b) for b in background)
    if len(background) != 3 or not all(0.0 <= b <= 1.0 for b in background):
        raise ValueError(f"background must be three numbers in [0,1], got {background!r}")
    if isinstance(splits, str):
        splits = (splits,)

    frames: list[tuple[Path, Path, int, np.ndarray, bool, dict]] = []  # json, image, index, w2c, test, meta
    for split in splits:
        jpath = root / f"transforms_{split}.json"
        if not jpath.is_file():
            raise SceneError(f"{jpath}: transforms file of split {split!r} does not exist")
        try:
            meta = json.loads(jpath.read_text())
        except (OSError, ValueError) as exc:
            raise SceneError(f"{jpath}: not a readable JSON file ({exc})") from exc
        if not isinstance(meta, dict) or not isinstance(meta.get("frames"), list):
            raise SceneError(f"{jpath}: expected a JSON object with a 'frames' list")
        if "camera_angle_x" not in meta and "fl_x" not in meta:
            raise SceneError(f"{jpath}: neither camera_angle_x nor fl_x is given")
        for key in ("camera_angle_x", "camera_angle_y", "fl_x", "fl_y", "cx", "cy"):
            _number(meta, key, jpath)
        for i, frame in enumerate(meta["frames"]):
            fp = frame.get("file_path") if isinstance(frame, dict) else None
            if not isinstance(fp, str):
                raise SceneError(f"{jpath}: frame {i} has no file_path")
            img_path = _image_path(root, fp)
            if not img_path.is_file():
                raise SceneError(f"{jpath}: frame {i} ({fp!r}) lists image {img_path} which does not exist")
            try:
                c2w = np.asarray(frame["transform_matrix"], np.float64)
            except (KeyError, TypeError, ValueError) as exc:
                raise SceneError(f"{jpath}: frame {i} ({fp!r}) has no valid transform_matrix") from exc
            check_pose(c2w, f"{jpath}: frame {i} ({fp!r})", "transform_matrix")
            w2c = invert_rigid(c2w @ GL_TO_CV)
            frames.append((jpath, img_path, i, w2c, split == "test", meta))
    if not frames:
        raise SceneError(f"{root}: no frames in splits {list(splits)}")

    is_test_all = np.array([f[4] for f in frames])
    keep = select_views(is_test_all, max_views)
    frames = [frames[i] for i in keep]

    def load(frame):
        jpath, img_path, i, _, _, meta = frame
        img = load_image(img_path)
        h, w = img.shape[:2]
        if "fl_x" in meta:
            fx = _number(meta, "fl_x", jpath)
            fy = _number(meta, "fl_y", jpath) or fx
        else:
            fx = 0.5 * w / math.tan(0.5 * _number(meta, "camera_angle_x", jpath))
            ang_y = _number(meta, "camera_angle_y", jpath)
            fy = fx if ang_y is None else 0.5 * h / math.tan(0.5 * ang_y)
        cx = _number(meta, "cx", jpath)
        cy = _number(meta, "cy", jpath)
        K = pinhole(fx, fy, w / 2 if cx is None else cx, h / 2 if cy is None else cy)
        check_intrinsics(K, f"{jpath}: frame {i}")
        if img.shape[2] == 4:
            rgb, alpha = composite_downscaled(img, background, factor)
            return rgb, alpha > 0.5, scale_intrinsics(K, 1 / factor), img.shape[:2]
        return downscale_area(img, factor), None, scale_intrinsics(K, 1 / factor), img.shape[:2]

    loaded = parallel_map(load, frames)
    check_same_size([size for *_, size in loaded], [f[1] for f in frames])
    images = np.stack([im for im, *_ in loaded])
    foreground = None
    if any(fg is not None for _, fg, *_ in loaded):
        foreground = np.stack([np.ones(images.shape[1:3], bool) if fg is None else fg for _, fg, *_ in loaded])
    xyz, rgb = random_points_in_box(num_random_points, [-points_extent] * 3, [points_extent] * 3, seed)
    return SceneData(
        images=images, intrinsics=np.stack([K for _, _, K, _ in loaded]),
        world_to_camera=np.stack([f[3] for f in frames]), is_test=is_test_all[keep], points_xyz=xyz,
        points_rgb=rgb, image_names=[Path(os.path.relpath(f[1], root)).as_posix() for f in frames], source=str(root),
        background=background, foreground=foreground, random_point_colours=True,
    ).validate()
