"""3D-OVS scenes as their authors distribute them: an LLFF capture (``images/``, ``poses_bounds.npy``) plus
``segmentations/classes.txt`` and ``segmentations/<view index>/<class>.png``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.llff import read_llff
from stages.lib.readers.query_masks import finish_scene, load_binary_mask
from stages.lib.scene import SceneData, SceneError

# 3D-OVS's loader reads a class mask as ``uint8(grey / 255)``: only pure white (255) is the class.
OVS3D_MASK_THRESHOLD = 254


def read_classes(path: Path) -> list[str]:
    """``classes.txt``: one class name per line, blank lines ignored; sorted, as the 3D-OVS loader sorts them."""
    if not path.is_file():
        raise SceneError(f"{path}: class list does not exist")
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise SceneError(f"{path}: cannot read the class list ({exc})") from exc
    if not names:
        raise SceneError(f"{path}: the class list is empty")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SceneError(f"{path}: classes listed twice: {dup}")
    return sorted(names)


def read_ovs3d(path: str | Path, *, split: str = "annotated", test_every: int = 8, downscale: int = 1,
               max_views: int | None = None, num_random_points: int = 100_000, seed: int = 0) -> SceneData:
    """Read a 3D-OVS scene: LLFF poses and full-size ``images/``, and per annotated view (folder named by its
    index into the sorted images) one mask per class of ``classes.txt``, every one required.
    ``split="annotated"`` holds out the annotated views (3D-OVS evaluates on them); ``"dataset"`` keeps the LLFF
    reader's every-``test_every``-th split."""
    root = Path(path)
    seg = root / "segmentations"
    classes = read_classes(seg / "classes.txt")
    scene = read_llff(root, factor=1, test_every=test_every, num_random_points=num_random_points, seed=seed)
    folders = sorted((p for p in seg.iterdir() if p.is_dir()), key=lambda p: p.name)
    if not folders:
        raise SceneError(f"{seg}: no annotated view folders (segmentations/<view index>/)")
    views, query, masks = [], [], []
    for folder in folders:
        if not re.fullmatch(r"\d+", folder.name) or int(folder.name) >= scene.num_views:
            raise SceneError(f"{folder}: folder name must be the index of an image (0..{scene.num_views - 1})")
        for c, name in enumerate(classes):
            f = folder / f"{name}.png"
            if not f.is_file():
                raise SceneError(f"{f}: mask of class {name!r} (listed in classes.txt) does not exist")
            masks.append(load_binary_mask(f, OVS3D_MASK_THRESHOLD, (scene.width, scene.height), "class mask"))
            views.append(int(folder.name))
            query.append(c)
    annotations = QueryAnnotations("3dovs", classes, np.array(views, np.int32), np.array(query, np.int32),
                                   np.stack(masks))
    scene.categories = list(classes)
    return finish_scene(scene, annotations, split, max_views, downscale)
