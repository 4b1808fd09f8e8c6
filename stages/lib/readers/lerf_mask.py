"""LERF-Mask as Gaussian Grouping distributes it: a COLMAP scene (``images/``, ``sparse/0``), ``images_train/``
naming the training views, ``object_mask/`` (Gaussian Grouping's associated SAM masks, a training prior) and
``test_mask/<novel view>/<text prompt>.png``."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.colmap import read_colmap
from stages.lib.readers.images import list_images
from stages.lib.readers.query_masks import finish_scene, load_binary_mask
from stages.lib.scene import SceneData, SceneError

# Gaussian Grouping's eval_lerf_mask.py counts a pixel as inside the mask when its grey value exceeds 128.
LERF_MASK_THRESHOLD = 128


def read_lerf_mask(path: str | Path, *, split: str = "dataset", images_dir: str = "images",
                   sparse_dir: str = "sparse/0", downscale: int = 1, max_views: int | None = None,
                   num_random_points: int = 100_000, seed: int = 0) -> SceneData:
    """Read a LERF-Mask scene. Train views: the images whose stem has a file in ``images_train/``; the others are
    the test (novel) views, sorted by name. ``test_mask/<k>/<prompt>.png`` annotates test view ``k`` (an integer:
    index into the sorted test views, as Gaussian Grouping's renderer names its outputs) or the test view whose
    image stem is ``k``; one text query per file name."""
    root = Path(path)
    train_dir, test_dir = root / "images_train", root / "test_mask"
    for folder in (train_dir, test_dir):
        if not folder.is_dir():
            raise SceneError(f"{folder}: LERF-Mask folder does not exist")
    scene = read_colmap(root, images_dir=images_dir, sparse_dir=sparse_dir, num_random_points=num_random_points,
                        seed=seed)
    train_files = {p.stem: p for p in list_images(train_dir)}
    train_stems = set(train_files)
    stems = [Path(n).stem for n in scene.image_names]
    unknown = sorted(train_stems - set(stems))
    if unknown:
        raise SceneError(f"{train_files[unknown[0]]}: training image has no posed image in {root / images_dir}")
    test_views = [i for i, s in enumerate(stems) if s not in train_stems]
    if not test_views:
        raise SceneError(f"{train_dir}: every image is a training image; LERF-Mask needs novel test views")
    scene.is_test = np.array([s not in train_stems for s in stems])
    view_of_stem = {stems[i]: i for i in test_views}
    queries: list[str] = []
    views, query, masks = [], [], []
    folders = sorted(p for p in test_dir.iterdir() if p.is_dir())
    if not folders:
        raise SceneError(f"{test_dir}: no annotated view folders (test_mask/<novel view>/)")
    for folder in folders:
        if folder.name in view_of_stem:
            v = view_of_stem[folder.name]
        elif re.fullmatch(r"\d+", folder.name) and int(folder.name) < len(test_views):
            v = test_views[int(folder.name)]
        else:
            raise SceneError(f"{folder}: names neither a test view index (0..{len(test_views) - 1}) nor the stem "
                             f"of a test image")
        files = sorted(folder.glob("*.png"))
        if not files:
            raise SceneError(f"{folder}: no <text prompt>.png masks")
        for f in files:
            if f.stem not in queries:
                queries.append(f.stem)
            masks.append(load_binary_mask(f, LERF_MASK_THRESHOLD, (scene.width, scene.height), "test mask"))
            views.append(v)
            query.append(queries.index(f.stem))
    order = np.lexsort((np.array(query), np.array(views)))
    annotations = QueryAnnotations("lerf_mask", queries, np.array(views, np.int32)[order],
                                   np.array(query, np.int32)[order], np.stack(masks)[order])
    scene.categories = list(queries)
    return finish_scene(scene, annotations, split, max_views, downscale)
