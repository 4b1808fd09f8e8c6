"""ScanNet scans as exported by ScanNet's SensReader, with the scan's annotation files beside them.

Layout (``<scan>`` = e.g. ``scene0000_00``; everything but ``color/``, ``pose/``, ``intrinsic/`` and the labels
mesh is optional, and validated when present):

- ``color/<frame>.jpg``, ``pose/<frame>.txt`` (4x4 camera-to-world, OpenCV axes; all ``-inf`` = lost tracking),
  ``depth/<frame>.png`` (16-bit, millimetres), ``intrinsic/intrinsic_{color,depth}.txt`` (4x4);
- ``label-filt/<frame>.png`` (ids; NYU40 ids, or raw ScanNet label ids mapped through ``label_map``, the
  release's ``scannetv2-labels.combined.tsv``), ``instance-filt/<frame>.png`` (8-bit, ``objectId + 1``, 0 = none);
- ``<scan>_vh_clean_2.labels.ply`` (vertices = point cloud, NYU40 ``label``), ``<scan>.aggregation.json``
  (``segGroups``: ``objectId``, ``label``, ``segments``) and ``<scan>_vh_clean_2.0.010000.segs.json``
  (``segIndices``: the segment of every mesh vertex).

Pixel centres: ScanNet's intrinsics (like OpenCV's) put pixel centres on integer coordinates; they are moved to
ours (+0.5) on reading.
"""

from __future__ import annotations

import csv
import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stages.lib.readers.images import (
    check_factor,
    check_intrinsics,
    check_pose,
    check_same_size,
    downscale_area,
    downscale_nearest,
    every_nth_test,
    integer_centres_to_ours,
    invert_rigid,
    load_label_png,
    open_image,
    parallel_map,
    scale_intrinsics,
    select_views,
)
from stages.lib.scene import SceneData, SceneError
from stages.lib.semantic_metrics import SCANNET19

# NYU40 id of each ScanNet-19 category, in SCANNET19 order (the ScanNet benchmark's class subset).
NYU40_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 24, 28, 33, 34, 36)
NYU40_MAX = 40
# Median valid depth of a frame outside this range (metres) is implausible for an indoor RGB-D scan.
PLAUSIBLE_DEPTH_M = (0.1, 15.0)
SEGS_SUFFIX = "_vh_clean_2.0.010000.segs.json"
LABELS_PLY_SUFFIX = "_vh_clean_2.labels.ply"
COLOUR_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


def nyu40_to_scannet19(labels: np.ndarray) -> np.ndarray:
    """Map NYU40 ids to indices into ``SCANNET19`` (-1 for every other id)."""
    lut = np.full(256, -1, np.int32)
    lut[list(NYU40_IDS)] = np.arange(len(NYU40_IDS), dtype=np.int32)
    labels = np.asarray(labels).astype(np.int64)
    out = np.full(labels.shape, -1, np.int32)
    ok = (labels >= 0) & (labels < len(lut))
    out[ok] = lut[labels[ok]]
    return out


def _read_matrix(path: Path, what: str) -> np.ndarray:
    if not path.is_file():
        raise SceneError(f"{path}: {what} file does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on empty files; the shape check below names the file
            m = np.loadtxt(path, dtype=np.float64, ndmin=2)
    except (OSError, ValueError) as exc:
        raise SceneError(f"{path}: cannot parse the {what} as a 4x4 matrix ({exc})") from exc
    if m.shape != (4, 4):
        raise SceneError(f"{path}: {what} must be a 4x4 matrix, got shape {m.shape}")
    return m


def read_mesh_points(ply_path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Vertices ``(P,3)`` float32, colours ``(P,3)`` uint8 and NYU40 labels ``(P,)`` of a ScanNet labels mesh."""
    from plyfile import PlyData

    try:
        ply = PlyData.read(str(ply_path))
        vertex = ply["vertex"]
        names = set(vertex.data.dtype.names or ())
    except Exception as exc:  # plyfile raises several types on bad headers / short files
        raise SceneError(f"{ply_path}: cannot read the PLY mesh ({exc})") from exc
    missing = [k for k in ("x", "y", "z", "red", "green", "blue", "label") if k not in names]
    if missing:
        raise SceneError(f"{ply_path}: vertex properties {missing} are missing (have {sorted(names)})")
    xyz = np.stack([vertex[k] for k in ("x", "y", "z")], axis=1).astype(np.float32)
    rgb = np.stack([vertex[k] for k in ("red", "green", "blue")], axis=1).astype(np.uint8)
    if not np.isfinite(xyz).all():
        raise SceneError(f"{ply_path}: vertex coordinates contain NaN or inf")
    return xyz, rgb, np.asarray(vertex["label"]).astype(np.int64)


def read_label_map(tsv: Path) -> dict[int, int]:
    """ScanNet label id -> NYU40 id from the release's ``scannetv2-labels.combined.tsv`` (columns ``id``, ``nyu40id``;
    an empty ``nyu40id`` maps to 0, unannotated)."""
    try:
        with open(tsv, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SceneError(f"{tsv}: cannot read the label mapping ({exc})") from exc
    if not rows or not {"id", "nyu40id"} <= set(rows[0]):
        raise SceneError(f"{tsv}: expected a tab-separated table with columns 'id' and 'nyu40id'")
    out = {}
    for line, row in enumerate(rows, start=2):
        try:
            out[int(row["id"])] = int(row["nyu40id"] or 0)
        except (TypeError, ValueError) as exc:
            raise SceneError(f"{tsv}: line {line}: id / nyu40id are not integers ({exc})") from exc
    return out


def _load_json(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise SceneError(f"{path}: not a readable JSON file ({exc})") from exc
    if not isinstance(data, dict) or any(k not in data for k in keys):
        raise SceneError(f"{path}: expected a JSON object with key(s) {list(keys)}")
    return data


def read_instances(agg_path: Path, segs_path: Path, num_vertices: int) -> tuple[np.ndarray, dict[int, str]]:
    """Per-vertex ``objectId`` (-1 = unannotated) from the aggregation and segmentation files, and
    ``{objectId: label}``. ScanNet numbers the same instances ``objectId + 1`` (0 = unannotated) in its exports."""
    segs = _load_json(segs_path, ("segIndices",))["segIndices"]
    if not isinstance(segs, list) or not all(isinstance(s, int) for s in segs):
        raise SceneError(f"{segs_path}: segIndices must be a list of integers")
    if len(segs) != num_vertices:
        raise SceneError(f"{segs_path}: segIndices has {len(segs)} entries but the labels mesh has {num_vertices} "
                         f"vertices (segments of another mesh?)")
    seg_of_vertex = np.asarray(segs, np.int64)
    known = set(np.unique(seg_of_vertex).tolist())
    groups = _load_json(agg_path, ("segGroups",))["segGroups"]
    if not isinstance(groups, list):
        raise SceneError(f"{agg_path}: segGroups must be a list")
    instance = np.full(num_vertices, -1, np.int32)
    labels: dict[int, str] = {}
    for i, group in enumerate(groups):
        where = f"{agg_path}: segGroups[{i}]"
        if not isinstance(group, dict) or not isinstance(group.get("objectId"), int) \
                or not isinstance(group.get("label"), str) or not isinstance(group.get("segments"), list):
            raise SceneError(f"{where}: needs an integer objectId, a string label and a segments list")
        oid, segments = group["objectId"], group["segments"]
        if oid < 0 or oid in labels:
            raise SceneError(f"{where}: objectId {oid} is negative or used twice")
        if not segments:
            raise SceneError(f"{where} (objectId {oid}, {group['label']!r}) has no segments")
        unknown = [s for s in segments if s not in known]
        if unknown:
            raise SceneError(f"{where} (objectId {oid}, {group['label']!r}): segment id(s) {unknown[:5]} are not in "
                             f"{segs_path.name}")
        sel = np.isin(seg_of_vertex, segments)
        overlap = int((instance[sel] >= 0).sum())
        if overlap:
            warnings.warn(f"{where} (objectId {oid}) shares {overlap} vertices with an earlier object; the later "
                          f"object keeps them, as in ScanNet's export", stacklevel=3)
        instance[sel] = oid
        labels[oid] = group["label"]
    return instance, labels


def _numbered_files(folder: Path, suffixes: tuple[str, ...], what: str) -> dict[int, Path]:
    """``{frame id: path}`` of the files ``<integer>.<suffix>`` in a folder; any other file there is an error."""
    out: dict[int, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if not (p.is_file() and re.fullmatch(r"\d+", p.stem) and p.suffix.lower() in suffixes):
            raise SceneError(f"{p}: not a {what} named <frame id>{suffixes[0]}")
        if int(p.stem) in out:
            raise SceneError(f"{p}: frame {int(p.stem)} also has {out[int(p.stem)].name}")
        out[int(p.stem)] = p
    return out


def _pair_frames(colour: dict[int, Path], poses: dict[int, Path], color_dir: Path, pose_dir: Path) -> list[int]:
    for fid, cpath in colour.items():
        if fid not in poses:
            raise SceneError(f"{cpath}: colour image has no pose ({pose_dir / f'{fid}.txt'} does not exist)")
    for fid, ppath in poses.items():
        if fid not in colour:
            raise SceneError(f"{ppath}: pose has no colour image ({color_dir / f'{fid}.jpg'} does not exist)")
    return sorted(colour)


def _read_pose(path: Path) -> np.ndarray | None:
    """Camera-to-world of a frame, or None for lost tracking (ScanNet writes ``-inf`` there)."""
    c2w = _read_matrix(path, "pose")
    bad = ~np.isfinite(c2w)
    if bad.any():
        if (c2w[bad] == -np.inf).all():
            return None
        raise SceneError(f"{path}: pose contains NaN or +inf (only -inf marks lost tracking)")
    return check_pose(c2w, str(path), "camera-to-world pose")


def _companion(folder: Path, fid: int, cpath: Path, what: str) -> Path:
    path = folder / f"{fid}.png"
    if not path.is_file():
        raise SceneError(f"{path}: {what} of colour image {cpath} does not exist")
    return path


@dataclass
class _Frame:
    image: np.ndarray
    size: tuple[int, int]
    depth: np.ndarray | None
    depth_median: float
    semantic: np.ndarray | None
    instance: np.ndarray | None


def read_scannet(path: str | Path, *, frame_step: int = 1, test_every: int = 8, downscale: int = 1,
                 max_views: int | None = None, depth_scale: float = 1000.0,
                 label_map: str | None = None) -> SceneData:
    """Read a ScanNet scan (layout in the module docstring).

    Frames sorted by their integer id, then every ``frame_step``-th one kept; frames whose pose is ``-inf``
    (lost tracking) are skipped with a warning; of the remaining frames every ``test_every``-th
    (``i % test_every == 0``) is a test view. Depth (``depth_scale`` units per metre, 0 = unknown) is resampled to
    the colour grid by nearest lookup through both intrinsics. ``label-filt`` -> ``gt_semantic`` and the mesh's
    labels -> ``points_semantic`` go through NYU40 -> ScanNet-19 (-1 elsewhere); ``instance-filt`` -> ``gt_instance``
    and aggregation + segs -> ``points_instance`` hold ``objectId`` (-1 = none). ``label_map``: path of
    ``scannetv2-labels.combined.tsv`` when ``label-filt`` holds raw ScanNet label ids (the release's zips).
    """
    root = Path(path)
    factor = check_factor(downscale)
    if int(frame_step) != frame_step or frame_step < 1:
        raise ValueError(f"frame_step must be a positive integer, got {frame_step!r}")
    color_dir, depth_dir, pose_dir = root / "color", root / "depth", root / "pose"
    label_dir, inst_dir = root / "label-filt", root / "instance-filt"
    for folder, what in ((color_dir, "colour image"), (pose_dir, "pose")):
        if not folder.is_dir():
            raise SceneError(f"{folder}: {what} folder does not exist")
    colour = _numbered_files(color_dir, tuple(COLOUR_FORMATS), "colour image")
    if not colour:
        raise SceneError(f"{color_dir}: no colour images named <frame id>.jpg")
    ids = _pair_frames(colour, _numbered_files(pose_dir, (".txt",), "pose file"), color_dir, pose_dir)
    ids = ids[:: int(frame_step)]

    kc_path = root / "intrinsic" / "intrinsic_color.txt"
    K_color = integer_centres_to_ours(check_intrinsics(_read_matrix(kc_path, "colour intrinsics")[:3, :3],
                                                       str(kc_path)))
    has_depth = depth_dir.is_dir()
    kd_path = root / "intrinsic" / "intrinsic_depth.txt"
    K_depth = integer_centres_to_ours(check_intrinsics(_read_matrix(kd_path, "depth intrinsics")[:3, :3],
                                                       str(kd_path))) if has_depth else None
    lut = None
    if label_dir.is_dir() and label_map is not None:
        lut = read_label_map(Path(label_map))

    kept, c2ws, skipped = [], [], []
    for fid in ids:
        c2w = _read_pose(pose_dir / f"{fid}.txt")
        if c2w is None:
            skipped.append(fid)
        else:
            kept.append(fid)
            c2ws.append(c2w)
    if skipped:
        warnings.warn(f"{pose_dir}: skipped {len(skipped)} frame(s) with lost tracking (-inf pose): "
                      f"{skipped[:10]}{' ...' if len(skipped) > 10 else ''}", stacklevel=2)
    if not kept:
        raise SceneError(f"{pose_dir}: no frame has a finite pose")
    is_test_all = every_nth_test(len(kept), test_every)
    keep = select_views(is_test_all, max_views)
    kept = [kept[i] for i in keep]
    w2c = invert_rigid(np.stack([c2ws[i] for i in keep]))

    ply_files = sorted(root.glob(f"*{LABELS_PLY_SUFFIX}"))
    if len(ply_files) != 1:
        raise SceneError(f"{root}: expected exactly one *{LABELS_PLY_SUFFIX} mesh, found "
                         f"{[p.name for p in ply_files] or 'none'}")
    xyz, rgb, nyu = read_mesh_points(ply_files[0])
    points_instance, object_labels = _mesh_instances(root, ply_files[0], len(xyz))

    lookup: dict[tuple[int, ...], tuple[np.ndarray, ...]] = {}  # (colour, depth shapes) -> nearest depth pixel

    def depth_on_colour_grid(d: np.ndarray, hc: int, wc: int) -> np.ndarray:
        key = (hc, wc, *d.shape)
        if key not in lookup:
            v, u = np.meshgrid(np.arange(hc) + 0.5, np.arange(wc) + 0.5, indexing="ij")
            pix = np.stack([u, v, np.ones_like(u)], -1) @ (K_depth @ np.linalg.inv(K_color)).T
            ud = np.floor(pix[..., 0] / pix[..., 2]).astype(int)
            vd = np.floor(pix[..., 1] / pix[..., 2]).astype(int)
            ok = (ud >= 0) & (ud < d.shape[1]) & (vd >= 0) & (vd < d.shape[0])
            lookup[key] = (np.clip(vd, 0, d.shape[0] - 1), np.clip(ud, 0, d.shape[1] - 1), ok)
        vi, ui, ok = lookup[key]
        return np.where(ok, d[vi, ui], 0.0).astype(np.float32)

    def load(fid: int) -> _Frame:
        cpath = colour[fid]
        img = np.asarray(open_image(cpath, COLOUR_FORMATS[cpath.suffix.lower()]).convert("RGB"))
        hc, wc = img.shape[:2]
        depth, median = None, float("nan")
        if has_depth:
            d = _load_depth(_companion(depth_dir, fid, cpath, "depth image"), depth_scale)
            valid = d[d > 0]
            median = float(np.median(valid)) if valid.size else float("nan")
            depth = downscale_nearest(depth_on_colour_grid(d, hc, wc), factor)
        semantic = instance = None
        if label_dir.is_dir():
            lpath = _companion(label_dir, fid, cpath, "label image")
            semantic = downscale_nearest(_semantic(lpath, lut, label_map, (hc, wc), cpath), factor)
        if inst_dir.is_dir():
            ipath = _companion(inst_dir, fid, cpath, "instance image")
            instance = downscale_nearest(_instance(ipath, object_labels, (hc, wc), cpath), factor)
        return _Frame(downscale_area(img, factor), (hc, wc), depth, median, semantic, instance)

    frames = parallel_map(load, kept)
    check_same_size([f.size for f in frames], [colour[fid] for fid in kept])
    _check_principal_point(K_color, frames[0].size, kc_path)
    if has_depth:
        _warn_implausible_depth([f.depth_median for f in frames], [depth_dir / f"{fid}.png" for fid in kept])

    def stacked(name: str) -> np.ndarray | None:
        arrays = [getattr(f, name) for f in frames]
        return None if arrays[0] is None else np.stack(arrays).astype(np.int32 if name != "depth" else np.float32)

    K = scale_intrinsics(K_color, 1 / factor)
    return SceneData(
        images=np.stack([f.image for f in frames]), intrinsics=np.repeat(K[None], len(kept), 0), world_to_camera=w2c,
        is_test=is_test_all[keep], points_xyz=xyz, points_rgb=rgb,
        image_names=[f"color/{colour[fid].name}" for fid in kept], source=str(root), categories=list(SCANNET19),
        depth=stacked("depth"), gt_semantic=stacked("semantic"), gt_instance=stacked("instance"),
        points_semantic=nyu40_to_scannet19(nyu), points_instance=points_instance,
        extra_attrs={"frame_ids": [int(f) for f in kept], "skipped_frames_lost_tracking": skipped,
                     "label_mapping": "NYU40 -> ScanNet-19 (NYU40 ids " + ",".join(map(str, NYU40_IDS)) + ")",
                     "instance_labels": {str(k): v for k, v in sorted(object_labels.items())},
                     "pixel_centres": "ScanNet intrinsics (integer pixel centres) moved by +0.5 to ours"},
    ).validate()


def _mesh_instances(root: Path, ply: Path, num_vertices: int) -> tuple[np.ndarray | None, dict[int, str]]:
    """Per-vertex objectIds from ``<scan>.aggregation.json`` + segs, when the scan has an aggregation file."""
    scan = ply.name[: -len(LABELS_PLY_SUFFIX)]
    agg_path, segs_path = root / f"{scan}.aggregation.json", root / f"{scan}{SEGS_SUFFIX}"
    if not agg_path.is_file():
        return None, {}
    if not segs_path.is_file():
        raise SceneError(f"{agg_path}: its segmentation file {segs_path} does not exist")
    return read_instances(agg_path, segs_path, num_vertices)


def _load_depth(path: Path, scale: float) -> np.ndarray:
    """A 16-bit depth PNG as float32 metres; an 8-bit one (centimetre-scale geometry if accepted) is an error."""
    img = open_image(path, "PNG")
    if img.mode not in ("I;16", "I;16B", "I;16L"):
        raise SceneError(f"{path}: depth must be a single-channel 16-bit PNG (millimetres), got PIL mode {img.mode}")
    return np.asarray(img).astype(np.float32) / np.float32(scale)


def _check_size(arr: np.ndarray, size: tuple[int, int], path: Path, cpath: Path) -> None:
    if arr.shape != size:
        raise SceneError(f"{path}: image is {arr.shape[1]}x{arr.shape[0]} but its colour image {cpath} is "
                         f"{size[1]}x{size[0]}")


def _semantic(path: Path, lut: dict[int, int] | None, label_map: str | None, size: tuple[int, int],
              cpath: Path) -> np.ndarray:
    """A ``label-filt`` image as ScanNet-19 indices (-1 = unannotated or another class)."""
    ids = load_label_png(path, "label image")
    _check_size(ids, size, path, cpath)
    if lut is not None:
        values = np.unique(ids)
        unknown = [int(v) for v in values if v != 0 and int(v) not in lut]
        if unknown:
            raise SceneError(f"{path}: label id(s) {unknown[:5]} are not in {label_map}")
        table = np.zeros(int(values.max()) + 1, np.int64)
        for v in values:
            table[v] = lut.get(int(v), 0)
        ids = table[ids]
    elif ids.max(initial=0) > NYU40_MAX:
        raise SceneError(f"{path}: label ids up to {int(ids.max())} are not NYU40 ids (0-{NYU40_MAX}); raw ScanNet "
                         f"label ids need the reader option label_map: <scannetv2-labels.combined.tsv>")
    return nyu40_to_scannet19(ids)


def _instance(path: Path, object_labels: dict[int, str], size: tuple[int, int], cpath: Path) -> np.ndarray:
    """An ``instance-filt`` image (8-bit ``objectId + 1``, 0 = none) as objectIds (-1 = none)."""
    ids = load_label_png(path, "instance image (objectId + 1)", bits=(8,))
    _check_size(ids, size, path, cpath)
    objects = ids - 1
    if object_labels:
        unknown = sorted(set(np.unique(objects[objects >= 0]).tolist()) - set(object_labels))
        if unknown:
            raise SceneError(f"{path}: instance value(s) {[u + 1 for u in unknown[:5]]} have no object in the "
                             f"aggregation file (objectId = value - 1)")
    return objects


def _check_principal_point(K: np.ndarray, size: tuple[int, int], where: Path) -> None:
    h, w = size
    if not (0 < K[0, 2] < w and 0 < K[1, 2] < h):
        raise SceneError(f"{where}: principal point ({K[0, 2] - 0.5:.2f}, {K[1, 2] - 0.5:.2f}) lies outside the "
                         f"{w}x{h} colour images (intrinsics of another resolution?)")


def _warn_implausible_depth(medians: list[float], paths: list[Path]) -> None:
    lo, hi = PLAUSIBLE_DEPTH_M
    odd = [(p, m) for p, m in zip(paths, medians) if not (lo <= m <= hi)]
    if odd:
        shown = ", ".join(f"{p.name} ({'no valid depth' if np.isnan(m) else f'{m:.3g} m'})" for p, m in odd[:5])
        warnings.warn(f"{paths[0].parent}: {len(odd)} depth image(s) have an implausible median depth for an indoor "
                      f"scan (outside {lo}-{hi} m; check depth_scale): {shown}", stacklevel=3)
