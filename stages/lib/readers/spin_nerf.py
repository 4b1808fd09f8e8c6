"""SPIn-NeRF multiview segmentation (Mirzaei et al. 2023), LLFF-format scenes: a binary object mask for many views.

Annotation folder of one scene (the ``Multiview-Segmentation-Data`` release, as SA3D's ``load_spin_data`` reads it):
``<image>.png`` (grey, object = 255) per annotated view, beside ``<image>_pseudo.png`` and ``<image>_cutout.png``
previews (ignored) and an ``annotations.json`` (ignored). ``<image>`` is the name of an image of the LLFF scene
(e.g. ``image000`` of ``images_4/``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.llff import read_llff
from stages.lib.readers.llff_annotations import annotation_mask, view_of, view_stems, with_annotations
from stages.lib.scene import SceneData, SceneError

QUERIES = ["reference object", "object"]
PREVIEW_SUFFIXES = ("_pseudo", "_cutout")


def annotation_files(folder: Path) -> list[Path]:
    """The object masks of a SPIn-NeRF annotation folder, sorted by name (previews left out)."""
    if not folder.is_dir():
        raise SceneError(f"{folder}: annotation folder does not exist")
    return sorted(p for p in folder.iterdir()
                  if p.suffix.lower() == ".png" and not p.stem.endswith(PREVIEW_SUFFIXES))


def read_spin_nerf(path: str | Path, *, masks: str, factor: int = 4, test_every: int = 8, downscale: int = 1,
                   max_views: int | None = None, num_random_points: int = 100_000, seed: int = 0) -> SceneData:
    """The LLFF scene at ``path`` (``read_llff``) with the object masks of the annotation folder ``masks``.

    Our reading of the protocol: the first mask in file-name order is the reference (a train view, prompts come from
    it); every other annotated view is scored and is a test view. Annotations at an integer multiple of the image
    size are downscaled to it.
    """
    root, folder = Path(path), Path(masks)
    files = annotation_files(folder)
    if len(files) < 2:
        raise SceneError(f"{folder}: needs a reference mask and at least one scored mask, found {len(files)}")
    scene = read_llff(root, factor=factor, test_every=test_every, downscale=downscale,
                      num_random_points=num_random_points, seed=seed)
    stems = view_stems(root, factor)
    views = [view_of(f.stem, stems, f, scene.num_views) for f in files]
    seen: dict[int, Path] = {}
    for file, view in zip(files, views):
        if view in seen:
            raise SceneError(f"{file}: names the same image as {seen[view]}")
        seen[view] = file
    object_masks = np.stack([annotation_mask(f, scene.height, scene.width) for f in files])
    empty = [f for f, m in zip(files, object_masks) if not m.any()]
    if empty:
        raise SceneError(f"{empty[0]}: annotation is empty")
    query = np.ones(len(files), np.int32)
    query[0] = 0
    notes = QueryAnnotations("spin_nerf", list(QUERIES), np.array(views, np.int32), query, object_masks)
    scene = with_annotations(scene, notes, views[:1], views[1:], max_views)
    scene.extra_attrs.update(spin_reference=files[0].name, spin_masks=[f.name for f in files])
    return scene.validate()
