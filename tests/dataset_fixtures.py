"""Tiny scenes in the published layouts of LERF-OVS (LangSplat), 3D-OVS and LERF-Mask (Gaussian Grouping), rendered
from a synthetic room so that the ground truth of every annotation is known."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from stages.lib.readers.images import invert_rigid
from stages.lib.scene import SceneData
from stages.lib.synthetic import SyntheticConfig, make_scene

JPEG_QUALITY = 95


def room(num_views: int = 8, width: int = 40, height: int = 30, seed: int = 1) -> SceneData:
    """The synthetic room every fixture is cut from."""
    return make_scene(SyntheticConfig(seed=seed, num_objects=8, num_views=num_views, width=width, height=height,
                                      test_every=4, num_points=2000))


def present_categories(scene: SceneData, view: int, limit: int = 3) -> list[int]:
    """The largest ``limit`` categories visible in a view (ids into ``scene.categories``)."""
    ids, counts = np.unique(scene.gt_semantic[view][scene.gt_semantic[view] >= 0], return_counts=True)
    return [int(i) for i in ids[np.argsort(-counts)][:limit]]


def write_colmap_model(root: Path, scene: SceneData, names: list[str]) -> None:
    """``sparse/0`` (binary) with one PINHOLE camera, every view posed, the room's points as ``points3D``."""
    import pycolmap

    K = scene.intrinsics[0]
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera.create_from_model_name(1, "PINHOLE", float(K[0, 0]), scene.width, scene.height)
    cam.params = [float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])]
    rec.add_camera_with_trivial_rig(cam)
    for i, name in enumerate(names):
        w2c = scene.world_to_camera[i].astype(np.float64)
        img = pycolmap.Image(name=name, camera_id=1, image_id=i + 1)
        rec.add_image_with_trivial_frame(img, pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[:3, :3]), w2c[:3, 3]))
    for p, c in zip(scene.points_xyz[:300].astype(np.float64), scene.points_rgb[:300]):
        rec.add_point3D(p, pycolmap.Track(), c)
    (root / "sparse" / "0").mkdir(parents=True)
    rec.write(str(root / "sparse" / "0"))


def save_jpg(path: Path, rgb: np.ndarray) -> np.ndarray:
    """Write a JPEG and return what a reader decodes from it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path, quality=JPEG_QUALITY)
    return np.asarray(Image.open(path).convert("RGB"))


def save_mask(path: Path, mask: np.ndarray) -> None:
    """A binary mask as an 8-bit grey PNG, 0 / 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(path)


def box_polygon(mask: np.ndarray) -> tuple[list[list[int]], list[int], np.ndarray]:
    """The mask's tight box as a 4-point polygon, its bbox [x1, y1, x2, y2] and the pixels the polygon covers
    (boundary included)."""
    ys, xs = np.nonzero(mask)
    x1, x2, y1, y2 = int(xs.min()), int(xs.max()), int(ys.min()), int(ys.max())
    covered = np.zeros_like(mask, bool)
    covered[y1:y2 + 1, x1:x2 + 1] = True
    return [[x1, y1], [x2, y1], [x2, y2], [x1, y2]], [x1, y1, x2, y2], covered


def write_lerf_ovs(root: Path, scene_name: str = "teatime", annotated: tuple[int, ...] = (2, 5),
                   scene: SceneData | None = None) -> dict:
    """``<root>/<scene>/{images,sparse/0}`` and ``<root>/label/<scene>/frame_XXXXX.{json,jpg}`` (LangSplat's layout,
    frames numbered from 1). Every annotated frame gets one box polygon per large visible category; the first query
    of the first frame gets a second, 2x2 polygon at the image's top-left corner (same query: united).
    Returns the expected content: images, names, masks {(view, query): mask}, boxes {(view, query): [...]}."""
    scene = scene or room()
    folder, labels = root / scene_name, root / "label" / scene_name
    names = [f"frame_{i + 1:05d}.jpg" for i in range(scene.num_views)]
    images = np.stack([save_jpg(folder / "images" / n, scene.images[i]) for i, n in enumerate(names)])
    write_colmap_model(folder, scene, names)
    masks, boxes = {}, {}
    for v in annotated:
        objects = []
        for c in present_categories(scene, v):
            polygon, bbox, covered = box_polygon(scene.gt_semantic[v] == c)
            query = scene.categories[c]
            objects.append({"category": query, "bbox": bbox, "segmentation": polygon, "area": int(covered.sum())})
            masks[(v, query)], boxes[(v, query)] = covered, [bbox]
            if v == annotated[0] and len(objects) == 1:
                extra = [[0, 0], [1, 0], [1, 1], [0, 1]]
                objects.append({"category": query, "bbox": [0, 0, 1, 1], "segmentation": extra})
                masks[(v, query)] = covered.copy()
                masks[(v, query)][:2, :2] = True
                boxes[(v, query)].append([0, 0, 1, 1])
        save_jpg(labels / names[v], scene.images[v])
        info = {"name": names[v], "height": scene.height, "width": scene.width}
        (labels / names[v].replace(".jpg", ".json")).write_text(json.dumps({"info": info, "objects": objects}))
    return {"images": images, "names": names, "masks": masks, "boxes": boxes, "scene": scene}


def write_ovs3d(root: Path, scene_name: str = "bed", annotated: tuple[int, ...] = (0, 4),
                scene: SceneData | None = None) -> dict:
    """``<root>/<scene>/{images/NN.png,poses_bounds.npy}`` and ``segmentations/{classes.txt,<NN>/<class>.png}``
    (3D-OVS's layout; view folders named by the image index, as its loader's ``int(folder)`` requires). Classes: the
    categories visible in the annotated views (written unsorted, as a list may be). Returns images, names, classes
    (sorted), masks {(view, class)}."""
    scene = scene or room()
    folder = root / scene_name
    names = [f"{i:02d}.png" for i in range(scene.num_views)]
    (folder / "images").mkdir(parents=True)
    for i, n in enumerate(names):
        Image.fromarray(scene.images[i]).save(folder / "images" / n)
    images = scene.images
    c2w = invert_rigid(scene.world_to_camera)
    K = scene.intrinsics[0]
    rows = []
    for m in c2w:  # OpenCV [right, down, forward] -> LLFF [down, right, backwards]
        pose = np.stack([m[:3, 1], m[:3, 0], -m[:3, 2], m[:3, 3], [scene.height, scene.width, K[0, 0]]], axis=1)
        rows.append(np.concatenate([pose.reshape(-1), [0.1, 20.0]]))
    np.save(folder / "poses_bounds.npy", np.array(rows))
    ids = sorted({c for v in annotated for c in present_categories(scene, v, limit=4)})
    classes = [scene.categories[c] for c in ids]
    seg = folder / "segmentations"
    seg.mkdir(parents=True)
    (seg / "classes.txt").write_text("\n".join(reversed(classes)) + "\n")
    masks = {}
    for v in annotated:
        for c in ids:
            masks[(v, scene.categories[c])] = scene.gt_semantic[v] == c
            save_mask(seg / f"{v:02d}" / f"{scene.categories[c]}.png", masks[(v, scene.categories[c])])
    return {"images": images, "names": names, "classes": sorted(classes), "masks": masks, "scene": scene}


def write_lerf_mask(root: Path, scene_name: str = "figurines", test_views: tuple[int, ...] = (3, 6),
                    scene: SceneData | None = None) -> dict:
    """``<root>/<scene>/{images,images_train,object_mask,sparse/0,test_mask/<k>/<prompt>.png}`` (Gaussian Grouping's
    layout; ``k`` indexes the sorted test views). Returns images, names, test views, masks {(view, prompt)}."""
    scene = scene or room()
    folder = root / scene_name
    names = [f"frame_{i + 1:05d}.jpg" for i in range(scene.num_views)]
    images = np.stack([save_jpg(folder / "images" / n, scene.images[i]) for i, n in enumerate(names)])
    write_colmap_model(folder, scene, names)
    (folder / "object_mask").mkdir()
    for i, n in enumerate(names):
        if i not in test_views:
            save_jpg(folder / "images_train" / n, scene.images[i])
        object_ids = np.clip(scene.gt_instance[i] + 1, 0, 255).astype(np.uint8)  # 0 = no object
        Image.fromarray(object_ids, mode="L").save(folder / "object_mask" / n.replace(".jpg", ".png"))
    masks = {}
    for k, v in enumerate(sorted(test_views)):
        for c in present_categories(scene, v, limit=2):
            masks[(v, scene.categories[c])] = scene.gt_semantic[v] == c
            save_mask(folder / "test_mask" / str(k) / f"{scene.categories[c]}.png", masks[(v, scene.categories[c])])
    return {"images": images, "names": names, "test_views": sorted(test_views), "masks": masks, "scene": scene}

