"""Tiny scenes in the published layouts of Replica (Semantic-NeRF's rendering, Gaga's split), NVOS and SPIn-NeRF
(LLFF scenes with annotations), rendered from the synthetic room so that every ground truth is known."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from dataset_fixtures import save_mask
from PIL import Image

from stages.lib.readers.images import downscale_area, invert_rigid
from stages.lib.scene import SceneData
from stages.lib.synthetic import SyntheticConfig, make_scene

REPLICA_HFOV = 90.0


def synthetic_room(num_views: int, width: int, height: int, trajectory: str = "orbit", fov_deg: float = 60.0,
                   seed: int = 1) -> SceneData:
    return make_scene(SyntheticConfig(seed=seed, num_objects=8, num_views=num_views, width=width, height=height,
                                      trajectory=trajectory, fov_deg=fov_deg, test_every=4, num_points=500))


def save_png(path: Path, arr: np.ndarray, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode=mode).save(path)


# ----------------------------------------------------------------------------------------------
# Replica (Semantic-NeRF's rendered copy, as Gaga's data/replica scripts unpack it)
# ----------------------------------------------------------------------------------------------
def write_replica(root: Path, scene_name: str = "office_0", num_frames: int = 20, width: int = 32,
                  height: int = 24) -> tuple[Path, SceneData]:
    """``<root>/Replica_Dataset/<scene>/Sequence_1/{rgb,depth,semantic_class}/`` + ``traj_w_c.txt`` and the instance
    maps in ``<root>/Replica_Dataset/Replica_Instance_Segmentation/<scene>/Sequence_1/semantic_instance/``
    (16-bit ids, with ``vis_*`` colour previews beside them). Returns the scene folder and the rendered room."""
    room = synthetic_room(num_frames, width, height, fov_deg=REPLICA_HFOV)
    base = root / "Replica_Dataset"
    seq = base / scene_name / "Sequence_1"
    inst = base / "Replica_Instance_Segmentation" / scene_name / "Sequence_1" / "semantic_instance"
    c2w = invert_rigid(room.world_to_camera.astype(np.float64))
    seq.mkdir(parents=True)
    np.savetxt(seq / "traj_w_c.txt", c2w.reshape(num_frames, 16), fmt="%.10f")
    for i in range(num_frames):
        save_png(seq / "rgb" / f"rgb_{i}.png", room.images[i])
        save_png(seq / "depth" / f"depth_{i}.png", np.round(room.depth[i] * 1000).astype(np.uint16))
        save_png(seq / "semantic_class" / f"semantic_class_{i}.png", (room.gt_semantic[i] + 1).astype(np.uint8))
        save_png(seq / "semantic_class" / f"vis_sem_class_{i}.png", room.images[i])
        save_png(inst / f"semantic_instance_{i}.png", room.gt_instance[i].astype(np.uint16))
        save_png(inst / f"vis_sem_instance_{i}.png", room.images[i])
    return base / scene_name, room


# ----------------------------------------------------------------------------------------------
# LLFF scenes (NVOS / SPIn-NeRF geometry)
# ----------------------------------------------------------------------------------------------
def write_llff(scene_dir: Path, room: SceneData, factor: int = 2) -> list[str]:
    """``poses_bounds.npy`` (3x5 [down, right, back | t | H, W, f] at full resolution + near/far per view),
    ``images/IMG_<n>.JPG`` at full resolution and ``images_<factor>/image<nnn>.png`` (renamed, as the LLFF release's
    downscaled folders are). Returns the full-resolution image names."""
    n, h, w = room.images.shape[:3]
    c2w = invert_rigid(room.world_to_camera.astype(np.float64))
    rows = []
    for i in range(n):
        llff = np.stack([c2w[i, :3, 1], c2w[i, :3, 0], -c2w[i, :3, 2], c2w[i, :3, 3]], 1)
        hwf = np.array([[h], [w], [room.intrinsics[i, 0, 0]]])
        d = room.depth[i][room.depth[i] > 0]
        rows.append(np.concatenate([np.concatenate([llff, hwf], 1).ravel(), [d.min() * 0.9, d.max() * 1.1]]))
    scene_dir.mkdir(parents=True)
    np.save(scene_dir / "poses_bounds.npy", np.array(rows))
    names = [f"IMG_{4000 + i}" for i in range(n)]
    for i, name in enumerate(names):
        (scene_dir / "images").mkdir(exist_ok=True)
        Image.fromarray(room.images[i]).save(scene_dir / "images" / f"{name}.JPG", quality=95)
        save_png(scene_dir / f"images_{factor}" / f"image{i:03d}.png", downscale_area(room.images[i], factor))
    return names


def nvos_scribbles(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hand-like strokes: a horizontal line through the object's middle row (inside it) and a line 3 px left of it."""
    ys, xs = np.nonzero(mask)
    row = int(np.median(ys))
    pos = np.zeros_like(mask)
    pos[row, xs[ys == row].min(): xs[ys == row].max() + 1] = True
    pos &= mask
    neg = np.zeros_like(mask)
    col = max(int(xs.min()) - 3, 0)
    neg[ys.min(): ys.max() + 1, col] = True
    return pos, neg & ~mask


def largest_object(room: SceneData, view: int) -> int:
    ids, counts = np.unique(room.gt_instance[view][room.gt_instance[view] >= 6], return_counts=True)
    return int(ids[np.argmax(counts)])


def write_nvos(root: Path, task: str = "fern", num_views: int = 10, width: int = 64, height: int = 48,
               reference: int = 2, target: int = 7) -> tuple[Path, Path, dict]:
    """An LLFF scene ``<root>/nerf_llff_data/<task>`` and the NVOS tree ``<root>/nvos`` (``masks/<task>/<target>.JPG``
    + ``<target>_mask.png``, ``reference_image/<task>/<reference>.JPG``, ``scribbles/<task>/pos_/neg_/vis_*.png``),
    annotations at full resolution (twice the ``images_2`` size). Returns the scene folder, the tree and the truth
    (reference / target view, object id, full-resolution masks)."""
    room = synthetic_room(num_views, width, height, trajectory="forward")
    scene_dir = root / "nerf_llff_data" / task
    names = write_llff(scene_dir, room)
    obj = largest_object(room, reference)
    target_mask = room.gt_instance[target] == obj
    pos, neg = nvos_scribbles(room.gt_instance[reference] == obj)
    tree = root / "nvos"
    (tree / "masks" / task).mkdir(parents=True)
    Image.fromarray(room.images[target]).save(tree / "masks" / task / f"{names[target]}.JPG")
    save_mask(tree / "masks" / task / f"{names[target]}_mask.png", target_mask)
    (tree / "reference_image" / task).mkdir(parents=True)
    Image.fromarray(room.images[reference]).save(tree / "reference_image" / task / f"{names[reference]}.JPG")
    colour = np.zeros((height, width, 3), np.uint8)
    save_png(tree / "scribbles" / task / f"pos_{names[reference]}.png", np.where(pos[..., None], [0, 255, 0], colour)
             .astype(np.uint8))
    save_png(tree / "scribbles" / task / f"neg_{names[reference]}.png", np.where(neg[..., None], [255, 0, 0], colour)
             .astype(np.uint8))
    save_png(tree / "scribbles" / task / f"vis_{names[reference]}.png", room.images[reference])
    return scene_dir, tree, {"reference": reference, "target": target, "object": obj, "target_mask": target_mask,
                             "positive": pos, "negative": neg, "room": room}


def write_spin_nerf(root: Path, scene_name: str = "fern", num_views: int = 10, width: int = 64, height: int = 48,
                    annotated: tuple[int, ...] = (1, 3, 6, 8)) -> tuple[Path, Path, dict]:
    """An LLFF scene ``<root>/nerf_llff_data/<scene>`` and its SPIn-NeRF annotation folder ``<root>/spin/<scene>``
    (``image<nnn>.png`` object masks at the ``images_2`` size, ``_pseudo`` / ``_cutout`` previews, an
    ``annotations.json``). Returns the scene folder, the annotation folder and the truth."""
    room = synthetic_room(num_views, width, height, trajectory="forward")
    scene_dir = root / "nerf_llff_data" / scene_name
    write_llff(scene_dir, room)
    obj = largest_object(room, annotated[0])
    folder = root / "spin" / scene_name
    masks = {}
    for view in annotated:
        mask = downscale_area((room.gt_instance[view] == obj).astype(np.uint8) * 255, 2) > 127
        masks[view] = mask
        save_mask(folder / f"image{view:03d}.png", mask)
        save_mask(folder / f"image{view:03d}_pseudo.png", ~mask)
        small = downscale_area(room.images[view], 2)
        save_png(folder / f"image{view:03d}_cutout.png", np.dstack([small, mask.astype(np.uint8) * 255]))
    (folder / "annotations.json").write_text("{}")
    return scene_dir, folder, {"object": obj, "masks": masks, "room": room}
