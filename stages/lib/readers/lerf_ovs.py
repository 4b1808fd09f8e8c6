"""LERF-OVS as LangSplat distributes it: a COLMAP scene (``images/``, ``sparse/0``) plus ``label/<scene>/``
holding, per annotated frame, ``frame_XXXXX.jpg`` and a LabelMe-style ``frame_XXXXX.json``."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from stages.lib.annotations import QueryAnnotations
from stages.lib.readers.colmap import read_colmap
from stages.lib.readers.query_masks import finish_scene, polygon_mask
from stages.lib.scene import SceneData, SceneError


def _key(data: dict, key: str, where: str):
    if not isinstance(data, dict) or key not in data:
        raise SceneError(f"{where}: missing key {key!r}")
    return data[key]


def read_label_json(path: Path) -> tuple[str, int, int, list[tuple[str, np.ndarray, list[float]]]]:
    """One annotation file: (image name, height, width, [(query, polygon points, bbox x1 y1 x2 y2), ...])."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SceneError(f"{path}: not a readable JSON annotation file ({exc})") from exc
    info = _key(data, "info", str(path))
    name, h, w = (_key(info, k, f"{path}: info") for k in ("name", "height", "width"))
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise SceneError(f"{path}: info height/width must be positive integers, got {h!r} x {w!r}")
    objects = _key(data, "objects", str(path))
    if not isinstance(objects, list) or not objects:
        raise SceneError(f"{path}: 'objects' must be a non-empty list")
    out = []
    for i, obj in enumerate(objects):
        where = f"{path}: objects[{i}]"
        query = _key(obj, "category", where)
        bbox = np.asarray(_key(obj, "bbox", where), dtype=np.float64).reshape(-1)
        if not isinstance(query, str) or not query.strip():
            raise SceneError(f"{where}: 'category' must be a non-empty text query")
        if bbox.shape != (4,) or not np.isfinite(bbox).all():
            raise SceneError(f"{where}: 'bbox' must be 4 finite numbers x1, y1, x2, y2, got {bbox.tolist()}")
        out.append((query, _key(obj, "segmentation", where), bbox.tolist()))
    return str(name), h, w, out


def read_lerf_ovs(path: str | Path, *, label_dir: str | None = None, split: str = "annotated",
                  images_dir: str = "images", sparse_dir: str = "sparse/0", test_every: int = 8, downscale: int = 1,
                  max_views: int | None = None, num_random_points: int = 100_000, seed: int = 0) -> SceneData:
    """Read a LERF-OVS scene ``<path>`` and its labels (default ``<path>/../label/<scene folder name>``).

    Every ``frame_*.json`` annotates the image ``info.name`` of ``images/``: each object is a text query
    (``category``), a polygon (``segmentation``, [[x, y], ...]) and a box (``bbox``); objects of one query in one
    frame are united (their boxes all kept), as LangSplat's evaluation does. ``split="annotated"`` holds out the
    annotated frames as test views; ``"dataset"`` keeps the COLMAP reader's every-``test_every``-th split.
    """
    root = Path(path)
    labels = Path(label_dir) if label_dir is not None else root.parent / "label" / root.name
    if not labels.is_dir():
        raise SceneError(f"{labels}: LERF-OVS label folder does not exist (set the reader option label_dir)")
    files = sorted(labels.glob("frame_*.json"))
    if not files:
        raise SceneError(f"{labels}: no frame_*.json annotation files")
    scene = read_colmap(root, images_dir=images_dir, sparse_dir=sparse_dir, test_every=test_every,
                        num_random_points=num_random_points, seed=seed)
    view_of = {Path(n).name: i for i, n in enumerate(scene.image_names)}
    queries: list[str] = []
    masks: dict[tuple[int, int], np.ndarray] = {}
    boxes: dict[tuple[int, int], list[list[float]]] = defaultdict(list)
    for f in files:
        name, h, w, objects = read_label_json(f)
        if name not in view_of:
            raise SceneError(f"{f}: annotates image {name!r}, which is not a posed image of {root / images_dir}")
        if (h, w) != (scene.height, scene.width):
            raise SceneError(f"{f}: info size {w}x{h} differs from the image {name} ({scene.width}x{scene.height})")
        v = view_of[name]
        for i, (query, polygon, bbox) in enumerate(objects):
            if query not in queries:
                queries.append(query)
            key = (v, queries.index(query))
            mask = polygon_mask(polygon, h, w, f"{f}: objects[{i}].segmentation")
            masks[key] = mask | masks[key] if key in masks else mask
            boxes[key].append(bbox)
    keys = sorted(masks)
    box_rows = [(k, b) for k in keys for b in boxes[k]]
    annotations = QueryAnnotations(
        "lerf_ovs", queries, np.array([k[0] for k in keys], np.int32), np.array([k[1] for k in keys], np.int32),
        np.stack([masks[k] for k in keys]), np.array([b for _, b in box_rows], np.float32).reshape(-1, 4),
        np.array([keys.index(k) for k, _ in box_rows], np.int32))
    scene.categories = list(queries)
    scene.extra_attrs = {**scene.extra_attrs, "label_dir": str(labels)}
    return finish_scene(scene, annotations, split, max_views, downscale)
