"""Pieces shared by the readers of text-query datasets (LERF-OVS, 3D-OVS, LERF-Mask): polygon rasterisation, the
"annotated views are the test views" split, and binary mask files."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.images import load_mask, resize_scene, select_views
from stages.lib.scene import SceneData, SceneError

SPLITS = ("annotated", "dataset")
PER_VIEW_ATTRS = ("colmap_camera_ids", "near_far")  # store attributes of the colmap / llff readers, one per view


def polygon_mask(points: Sequence[Sequence[float]], height: int, width: int, where: str) -> np.ndarray:
    """Filled polygon ``[[x, y], ...]`` (pixel centres on integer coordinates, vertices truncated to integers as
    LangSplat's ``polygon_to_mask`` does) as a bool mask ``(height, width)``; boundary pixels are inside."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 3 or not np.isfinite(pts).all():
        raise SceneError(f"{where}: a polygon needs at least 3 finite [x, y] points, got shape {pts.shape}")
    canvas = Image.new("L", (width, height), 0)
    ImageDraw.Draw(canvas).polygon([(int(x), int(y)) for x, y in pts.astype(np.int32)], fill=1, outline=1)
    return np.asarray(canvas, dtype=bool)


def load_binary_mask(path: Path, threshold: int, size: tuple[int, int], what: str) -> np.ndarray:
    """A grey mask file as bool ``grey > threshold`` (colour files: their luminance, as PIL's ``convert('L')``);
    ``size`` = (width, height) it must have."""
    mask = load_mask(path, threshold)
    if mask.shape != (size[1], size[0]):
        raise SceneError(f"{path}: {what} is {mask.shape[1]}x{mask.shape[0]} but its image is {size[0]}x{size[1]}")
    return mask


def finish_scene(scene: SceneData, annotations: QueryAnnotations, split: str, max_views: int | None,
                 downscale: int) -> SceneData:
    """Attach the annotations, apply the split (``annotated``: the annotated views are the test views;
    ``dataset``: keep the reader's split), keep ``max_views`` views (every annotated view when the split is
    ``annotated`` and they fit), then downscale."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    annotated = np.zeros(scene.num_views, bool)
    annotated[annotations.view] = True
    is_test = annotated if split == "annotated" else scene.is_test
    if is_test.all():
        raise SceneError(f"{scene.source}: every view is annotated; no view is left to train on")
    keep = select_views(is_test, max_views)
    if split == "annotated" and max_views is not None and max_views > annotated.sum():
        train = np.nonzero(~annotated)[0]
        keep = np.sort(np.concatenate([np.nonzero(annotated)[0],
                                       train[select_views(np.zeros(len(train), bool), max_views - annotated.sum())]]))
    annotations = annotations.select_views(keep)
    names = [scene.image_names[i] for i in keep]

    def take(arr):
        return None if arr is None else arr[keep]

    out = dataclasses.replace(
        scene, images=scene.images[keep], intrinsics=scene.intrinsics[keep],
        world_to_camera=scene.world_to_camera[keep], is_test=is_test[keep], image_names=names,
        depth=take(scene.depth), foreground=take(scene.foreground), gt_semantic=take(scene.gt_semantic),
        gt_instance=take(scene.gt_instance), annotations=annotations,
        extra_attrs={**scene.extra_attrs, **{k: [scene.extra_attrs[k][i] for i in keep] for k in PER_VIEW_ATTRS
                                             if k in scene.extra_attrs},
                     "split": split})
    return resize_scene(out, downscale).validate()
