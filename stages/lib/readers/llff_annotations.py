"""Pieces shared by the readers of annotated LLFF-format scenes (NVOS, SPIn-NeRF): which scene view an annotation
file names, annotation masks brought to the image grid, and a view subset that keeps the annotated views."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.images import _open_fully, downscale_nearest, list_images, select_views
from stages.lib.scene import SceneData, SceneError


def view_stems(scene_dir: Path, factor: int) -> list[dict[str, int]]:
    """Image-name stems -> view index, for ``images_<factor>/`` and (when present) the full-resolution ``images/``:
    both list the same views in sorted order, but downscaled LLFF folders often rename the files (``image000.png``)."""
    folders = [scene_dir / (f"images_{factor}" if factor > 1 else "images"), scene_dir / "images"]
    out = []
    for folder in dict.fromkeys(folders):
        if folder.is_dir():
            out.append({p.stem: i for i, p in enumerate(list_images(folder))})
    return out


def view_of(stem: str, stems: list[dict[str, int]], where: Path, num_views: int) -> int:
    """The view an annotation file names by its image stem; an unknown stem is an error naming the file."""
    for table in stems:
        if stem in table and len(table) == num_views:
            return table[stem]
    raise SceneError(f"{where}: names image {stem!r}, which is not among the scene's images")


def annotation_mask(path: Path, height: int, width: int, scribble: bool = False) -> np.ndarray:
    """A binary annotation on the image grid ``(height, width)`` bool. Masks: grey value above half the file's maximum
    (0/255 and 0/1 masks alike; an all-zero file is empty). Scribbles: any non-zero
    colour channel (where there is alpha, only opaque pixels). Annotations at an integer multiple of the image size
    (full-resolution annotations of a downscaled image folder) are downscaled (masks nearest, scribbles by any pixel of
    the block); any other size is an error."""
    img = _open_fully(path)
    arr = np.asarray(img)
    if scribble:
        if arr.ndim == 3 and arr.shape[2] in (2, 4):
            mask = (arr[..., :-1] > 0).any(-1) & (arr[..., -1] > 0)
        else:
            mask = arr > 0 if arr.ndim == 2 else (arr > 0).any(-1)
    else:
        grey = np.asarray(img.convert("L") if img.mode not in ("1", "L", "I;16", "I") else img).astype(np.float64)
        mask = grey > grey.max() / 2 if grey.max() > 0 else np.zeros(grey.shape, bool)
    h, w = mask.shape
    k = h // height if height else 0
    if (h, w) != (height, width) and not (k > 1 and (h, w) == (height * k, width * k)):
        raise SceneError(f"{path}: annotation is {w}x{h} but the scene's images are {width}x{height} "
                         f"(an integer multiple is downscaled; other sizes are refused)")
    if k <= 1:
        return mask
    if scribble:  # a thin stroke survives downscaling: a pixel is on when any pixel of its block is
        return mask.reshape(height, k, width, k).any(axis=(1, 3))
    return downscale_nearest(mask, k)


def take_views(scene: SceneData, keep: np.ndarray) -> SceneData:
    """The scene restricted to views ``keep`` (sorted), annotations renumbered."""
    keep = np.sort(np.asarray(keep))

    def pick(arr):
        return None if arr is None else arr[keep]

    return dataclasses.replace(
        scene, images=scene.images[keep], intrinsics=scene.intrinsics[keep],
        world_to_camera=scene.world_to_camera[keep], is_test=scene.is_test[keep],
        image_names=[scene.image_names[i] for i in keep], depth=pick(scene.depth),
        foreground=pick(scene.foreground), gt_semantic=pick(scene.gt_semantic), gt_instance=pick(scene.gt_instance),
        annotations=None if scene.annotations is None else scene.annotations.select_views(keep),
        extra_attrs={**scene.extra_attrs, **({"near_far": np.asarray(scene.extra_attrs["near_far"])[keep].tolist()}
                                              if "near_far" in scene.extra_attrs else {})},
    )


def with_annotations(scene: SceneData, annotations: QueryAnnotations, train_views: list[int], test_views: list[int],
                     max_views: int | None) -> SceneData:
    """Attach the annotations, force the prompt views into the train split and the scored views into the test split,
    and keep ``max_views`` views (always including every annotated view)."""
    is_test = scene.is_test.copy()
    is_test[train_views] = False
    is_test[test_views] = True
    scene = dataclasses.replace(scene, is_test=is_test, annotations=annotations)
    if max_views is not None and max_views < scene.num_views:
        keep = np.union1d(select_views(is_test, max_views), np.unique(annotations.view))
        scene = take_views(scene, keep)
    return scene
