"""NVOS (Ren et al. 2022): LLFF scenes with, per task, scribbles on a reference view and the object mask of a target
view.

Annotation tree (the ``nvos-data`` release, as SA3D's ``load_nvos`` reads it): ``masks/<task>/<target>_mask.png``
(grey, object = 255) beside a copy of the target image ``masks/<task>/<target>.<ext>``;
``reference_image/<task>/<reference>.<ext>``; ``scribbles/<task>/pos_*.png``, ``neg_*.png`` (non-zero = scribble) and
a ``vis_*`` preview. Tasks: fern, flower, fortress, horns_center, horns_left, leaves, orchids, trex (two tasks on the
horns scene). ``<target>`` and ``<reference>`` are image names of the LLFF scene.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.images import list_images
from stages.lib.readers.llff import read_llff
from stages.lib.readers.llff_annotations import annotation_mask, view_of, view_stems, with_annotations
from stages.lib.scene import SceneData, SceneError

QUERIES = ["object", "positive scribble", "negative scribble"]


def _one(files: list[Path], what: str, folder: Path) -> Path:
    if len(files) != 1:
        raise SceneError(f"{folder}: expected exactly one {what}, found {[f.name for f in files] or 'none'}")
    return files[0]


def read_nvos(path: str | Path, *, annotations: str, task: str | None = None, factor: int = 8, test_every: int = 8,
              downscale: int = 1, max_views: int | None = None, num_random_points: int = 100_000,
              seed: int = 0) -> SceneData:
    """The LLFF scene at ``path`` (``read_llff``) with the NVOS ``task`` (default: the scene folder's name) from the
    annotation tree at ``annotations``. The reference view is a train view and the target view a test view whatever
    the LLFF hold-out says; annotations at an integer multiple of the image size are downscaled to it."""
    root, tree = Path(path), Path(annotations)
    task = task or root.name
    folders = {kind: tree / kind / task for kind in ("masks", "reference_image", "scribbles")}
    for folder in folders.values():
        if not folder.is_dir():
            have = sorted(p.name for p in folder.parent.iterdir()) if folder.parent.is_dir() else []
            raise SceneError(f"{folder}: NVOS task folder does not exist (tasks there: {have or 'none'})")
    mask_file = _one([p for p in folders["masks"].glob("*_mask.png")], "target mask <image>_mask.png",
                     folders["masks"])
    reference = _one(list_images(folders["reference_image"]), "reference image", folders["reference_image"])
    scribbles = list_images(folders["scribbles"])
    positive = _one([p for p in scribbles if p.name.startswith("pos")], "positive scribble pos_*", folders["scribbles"])
    negative = _one([p for p in scribbles if p.name.startswith("neg")], "negative scribble neg_*", folders["scribbles"])

    scene = read_llff(root, factor=factor, test_every=test_every, downscale=downscale,
                      num_random_points=num_random_points, seed=seed)
    stems = view_stems(root, factor)
    target = view_of(mask_file.stem.removesuffix("_mask"), stems, mask_file, scene.num_views)
    ref = view_of(reference.stem, stems, reference, scene.num_views)
    if ref == target:
        raise SceneError(f"{reference}: the reference and the target view are the same image")
    h, w = scene.height, scene.width
    masks = np.stack([annotation_mask(mask_file, h, w), annotation_mask(positive, h, w, scribble=True),
                      annotation_mask(negative, h, w, scribble=True)])
    for file, mask in zip((mask_file, positive, negative), masks):
        if not mask.any():
            raise SceneError(f"{file}: annotation is empty")
    notes = QueryAnnotations("nvos", list(QUERIES), np.array([target, ref, ref], np.int32),
                             np.arange(3, dtype=np.int32), masks)
    scene = with_annotations(scene, notes, [ref], [target], max_views)
    scene.extra_attrs.update(nvos_task=task, nvos_reference=reference.name, nvos_target=mask_file.name)
    return scene.validate()
