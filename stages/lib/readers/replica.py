"""Replica as rendered and distributed by Semantic-NeRF (the copy Gaga and Proto-SaGa evaluate on).

Layout of one scene (``<scene>/Sequence_1/``): ``rgb/rgb_<i>.png`` (8-bit RGB), ``depth/depth_<i>.png`` (16-bit,
millimetres), ``semantic_class/semantic_class_<i>.png`` (8-bit Replica class id, 0 = void),
``semantic_instance/semantic_instance_<i>.png`` (16-bit Replica object id; the distribution ships these in a
separate ``Replica_Instance_Segmentation/<scene>/Sequence_1/semantic_instance/`` tree, hence ``instance_dir``) and
``traj_w_c.txt`` (one line of 16 numbers per frame: the row-major 4x4 camera-to-world matrix, OpenCV axes).
``vis_*`` colour previews in the same folders are ignored.

Cameras (Semantic-NeRF's ``set_params_replica``): horizontal field of view 90 degrees, square pixels, principal point
``((W-1)/2, (H-1)/2)`` with pixel centres on integer coordinates. In our convention (centres at +0.5) that is
``fx = fy = W/2`` and ``(cx, cy) = (W/2, H/2)``.

Split (Semantic-NeRF's and Gaga's loaders): of frames 0..N-1, every ``frame_step``-th (``0, 5, 10, ...``) is a train
view and the frame ``test_offset`` after each of them (``2, 7, 12, ...``) a test view; with the published 900-frame
sequences that is 180 train and 180 test views. Other frames are not read.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from stages.lib.readers.images import (
    _open_fully,
    check_factor,
    check_pose,
    invert_rigid,
    load_depth_png,
    load_image,
    parallel_map,
    pinhole,
    resize_scene,
    select_views,
)
from stages.lib.scene import SceneData, SceneError

HFOV_DEG = 90.0
SEQUENCE = "Sequence_1"


def replica_intrinsics(width: int, height: int) -> np.ndarray:
    """Semantic-NeRF's Replica camera in our pixel convention: f = W / (2 tan 45deg), principal point at the centre."""
    focal = width / (2.0 * np.tan(np.radians(HFOV_DEG / 2)))
    return pinhole(focal, focal, width / 2.0, height / 2.0)


def read_trajectory(path: Path) -> np.ndarray:
    """``traj_w_c.txt`` -> (N,4,4) camera-to-world; a line that is not 16 numbers or not a rigid transform is an
    error naming the file and line."""
    if not path.is_file():
        raise SceneError(f"{path}: trajectory file does not exist")
    poses = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            values = np.array([float(v) for v in line.split()], np.float64)
        except ValueError as exc:
            raise SceneError(f"{path}: line {number}: not a list of numbers ({exc})") from exc
        if values.size != 16:
            raise SceneError(f"{path}: line {number}: expected 16 numbers (a 4x4 matrix), got {values.size}")
        poses.append(check_pose(values.reshape(4, 4), f"{path}: line {number}", "camera-to-world pose"))
    if not poses:
        raise SceneError(f"{path}: trajectory file has no poses")
    return np.stack(poses)


def numbered_files(folder: Path, prefix: str) -> dict[int, Path]:
    """``<prefix>_<i>.png`` files of a folder by frame number ``i``."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)\.png")
    return {int(m.group(1)): p for p in folder.iterdir() if (m := pattern.fullmatch(p.name))}


def load_label_png(path: Path, what: str) -> np.ndarray:
    """A single-channel 8- or 16-bit label PNG as int32 ``(H,W)``; colour images are refused (the ``vis_*`` previews
    are colour)."""
    img = _open_fully(path)
    if img.mode not in ("L", "I;16", "I;16B", "I;16L", "I"):
        raise SceneError(f"{path}: {what} must be a single-channel 8- or 16-bit PNG, got mode {img.mode}")
    return np.asarray(img).astype(np.int32)


def load_depth_mm(path: Path) -> np.ndarray:
    """A 16-bit depth PNG in millimetres as metres; 8-bit depth is refused (it would read as millimetre geometry)."""
    img = _open_fully(path)
    if img.mode not in ("I;16", "I;16B", "I;16L", "I"):
        raise SceneError(f"{path}: depth must be a 16-bit single-channel PNG (millimetres), got mode {img.mode}")
    return load_depth_png(path, 1000.0)


def split_frames(num_frames: int, frame_step: int, test_offset: int) -> tuple[list[int], list[int]]:
    """Gaga's / Semantic-NeRF's train and test frame numbers of a sequence of ``num_frames`` frames."""
    if int(frame_step) != frame_step or frame_step < 2 or not 0 < test_offset < frame_step:
        raise ValueError(f"need frame_step >= 2 and 0 < test_offset < frame_step, got {frame_step}, {test_offset}")
    train = list(range(0, num_frames, int(frame_step)))
    return train, [t + int(test_offset) for t in train if t + test_offset < num_frames]


def backprojected_points(depth: np.ndarray, images: np.ndarray, K: np.ndarray, c2w: np.ndarray, views: np.ndarray,
                         labels: list[np.ndarray | None], n: int, seed: int = 0):
    """``n`` pixels with depth drawn at random (seeded) from ``views``, back-projected to world points with their
    colour and, per label map in ``labels``, their label."""
    rng = np.random.default_rng(seed)
    v_idx, y, x = np.nonzero(depth[views] > 0)
    pick = rng.choice(len(x), size=min(int(n), len(x)), replace=False)
    v, y, x = np.asarray(views)[v_idx[pick]], y[pick], x[pick]
    z = depth[v, y, x].astype(np.float64)
    Kv = K[v]
    cam = np.stack([(x + 0.5 - Kv[:, 0, 2]) / Kv[:, 0, 0] * z, (y + 0.5 - Kv[:, 1, 2]) / Kv[:, 1, 1] * z, z], 1)
    xyz = np.einsum("nij,nj->ni", c2w[v, :3, :3], cam) + c2w[v, :3, 3]
    return (xyz.astype(np.float32), images[v, y, x],
            [None if lab is None else lab[v, y, x].astype(np.int32) for lab in labels])


def read_replica(path: str | Path, *, sequence: str = SEQUENCE, instance_dir: str | None = None, frame_step: int = 5,
                 test_offset: int = 2, downscale: int = 1, max_views: int | None = None,
                 num_points: int = 100_000, seed: int = 0) -> SceneData:
    """Read one Semantic-NeRF Replica scene (module docstring). ``path`` is the scene folder holding ``sequence``;
    ``instance_dir`` the folder of ``semantic_instance_<i>.png`` (default ``<sequence>/semantic_instance``, else the
    release's ``../Replica_Instance_Segmentation/<scene>/<sequence>/semantic_instance``).

    ``gt_instance`` keeps Replica's object ids as they are (Gaga's ``eval.py`` scores every id in the test views,
    0 included); ``gt_semantic`` is the class id minus one (void -> -1) over categories ``class_1 ..``. The point
    cloud (the format has none) back-projects ``num_points`` random depth pixels of the train views, with their
    colour, class and object id.
    """
    root = Path(path)
    seq = root / sequence
    factor = check_factor(downscale)
    if not seq.is_dir():
        raise SceneError(f"{seq}: sequence folder does not exist")
    c2w_all = read_trajectory(seq / "traj_w_c.txt")
    rgb = numbered_files(seq / "rgb", "rgb") if (seq / "rgb").is_dir() else {}
    if not rgb:
        raise SceneError(f"{seq / 'rgb'}: no colour images named rgb_<i>.png")
    if len(rgb) != len(c2w_all) or max(rgb) >= len(c2w_all):
        raise SceneError(f"{seq / 'traj_w_c.txt'} has {len(c2w_all)} poses but {seq / 'rgb'} has {len(rgb)} images "
                         f"numbered up to {max(rgb)}; frame i needs line i+1")
    train, test = split_frames(len(c2w_all), frame_step, test_offset)
    frames = sorted(train + test)
    missing = [f for f in frames if f not in rgb]
    if missing:
        raise SceneError(f"{seq / 'rgb' / f'rgb_{missing[0]}.png'}: colour image of frame {missing[0]} does not exist "
                         f"(its pose is line {missing[0] + 1} of traj_w_c.txt)")
    is_test_all = np.isin(frames, test)
    frames = [frames[i] for i in select_views(is_test_all, max_views)]
    is_test = np.isin(frames, test)

    inst_dir = Path(instance_dir) if instance_dir else seq / "semantic_instance"
    if not instance_dir and not inst_dir.is_dir():  # the release's separate instance tree beside the scenes
        inst_dir = root.parent / "Replica_Instance_Segmentation" / root.name / sequence / "semantic_instance"
    folders = {"depth": seq / "depth", "semantic_class": seq / "semantic_class", "semantic_instance": inst_dir}
    if not folders["depth"].is_dir():
        raise SceneError(f"{folders['depth']}: depth folder does not exist")
    if instance_dir and not inst_dir.is_dir():
        raise SceneError(f"{inst_dir}: instance folder does not exist")
    loaders = {"depth": load_depth_mm, "semantic_class": lambda p: load_label_png(p, "semantic class map"),
               "semantic_instance": lambda p: load_label_png(p, "instance map")}

    def load(frame: int) -> dict[str, np.ndarray]:
        image = load_image(rgb[frame])[..., :3]
        out = {"rgb": image}
        for name, folder in folders.items():
            if name != "depth" and not folder.is_dir():
                continue
            file = folder / f"{name}_{frame}.png"
            out[name] = loaders[name](file)
            if out[name].shape != image.shape[:2]:
                raise SceneError(f"{file}: {name} map is {out[name].shape[1]}x{out[name].shape[0]} but "
                                 f"{rgb[frame]} is {image.shape[1]}x{image.shape[0]}")
        return out

    loaded = parallel_map(load, frames)
    size = loaded[0]["rgb"].shape
    for frame, item in zip(frames, loaded):
        if item["rgb"].shape != size:
            raise SceneError(f"{rgb[frame]}: image is {item['rgb'].shape[1]}x{item['rgb'].shape[0]}, "
                             f"{rgb[frames[0]]} is {size[1]}x{size[0]}; a scene needs one image size")

    def stack(name: str) -> np.ndarray | None:
        return np.stack([item[name] for item in loaded]) if name in loaded[0] else None

    images, depth = stack("rgb"), stack("depth")
    classes, instances = stack("semantic_class"), stack("semantic_instance")
    semantic = None if classes is None else np.where(classes > 0, classes - 1, -1).astype(np.int32)
    K = np.repeat(replica_intrinsics(size[1], size[0])[None], len(frames), 0)
    c2w = c2w_all[frames]
    xyz, colours, (point_sem, point_inst) = backprojected_points(
        depth, images, K, c2w, np.nonzero(~is_test)[0], [semantic, instances], num_points, seed)
    scene = SceneData(
        images=images, intrinsics=K, world_to_camera=invert_rigid(c2w), is_test=is_test, points_xyz=xyz,
        points_rgb=colours, image_names=[rgb[f].name for f in frames], source=str(root),
        categories=[] if classes is None else [f"class_{i}" for i in range(1, max(int(classes.max()), 1) + 1)],
        depth=depth, gt_semantic=semantic, gt_instance=instances, points_semantic=point_sem,
        points_instance=point_inst,
        extra_attrs={"frame_ids": [int(f) for f in frames], "split": f"train every {frame_step}th frame from 0, "
                     f"test {test_offset} frames after each", "pixel_convention": "Semantic-NeRF: centres at integer "
                     "coordinates, principal point ((W-1)/2, (H-1)/2); stored +0.5"},
    )
    return resize_scene(scene, factor).validate()
