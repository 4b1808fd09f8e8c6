"""SAS 2D fusion evaluated per point (the "2D Fusion" rows of SAS Table 3), the ``evaluation`` piece ``sas`` of
``evaluate_semantic``; the distilled 3D network's point features (the lower rows), the piece ``sas_distilled``.

Each 2D model's per-pixel class prediction on every training view is aligned by text (Sec. 3.1) and fused onto the
scene's 3D points over the views that see them (occlusion-aware, ``projection``); the two models' point features are
then used alone (``fusion: single`` with ``model``) or fused (``add``, ``linear``, ``capability`` with the
capability store's table, Eq. 6-8). A point's class is its argmax over the text features of each ScanNet subset;
points no view sees are a miss. The same point features give the long-tail K-class protocol (Table 2, K = 40 / 80 /
160, ``stages.lib.vocabularies``): each point's argmax over the K vocabulary's text features from the same shared
text encoder (the distill stage keeps them in its store). The 2D queries label every test-view pixel with depth by its nearest point's class
over the vocabulary (our reading: SAS evaluates 3D only; this gives the LERF table a comparable row).
Points and depth (``stages.methods.sas.points``): the scan's points and the sensor depth for RGB-D scenes; a scene
without depth takes the trained RGB Gaussians (input ``gaussians``, a ``train_gs`` store): their centres are the points
and each view's rendered depth replaces the sensor's in the occlusion test and the 2D queries; the 3D protocol then
labels the scan's GT points by their nearest Gaussian (``points_protocol`` ``nearest_gaussian``). A scene with neither
stops with a clear error. Our readings:
tau defaults to 0.1 (the paper does not give its value); the shared text encoder is CLIP's when a real model is
fused and the oracle embedding of the class names for oracle models (``models2d.alignment_text``); real models load
their checkpoints from the stage's ``--weights-dir`` (the workflow's ``weights_dir``; default ``$OVGS_WEIGHTS`` or
``weights/``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.spatial import cKDTree
from tqdm import tqdm

from stages.lib.cli import StageCall, config_from_params
from stages.lib.semantic_metrics import (
    SCANNET_SUBSETS,
    QueryMasks,
    SemanticResult,
    confusion_matrix,
    long_tail_confusions,
    mask_iou,
    subset_labels,
)
from stages.lib.store import Store, StoreError, read_store
from stages.lib.vocabularies import LONG_TAIL_NAMES, unmapped
from stages.methods import register
from stages.methods.sas.capability import filled
from stages.methods.sas.fusion import fuse, unit
from stages.methods.sas.models2d import ClassModel, ImageInputs, ModelContext, alignment_text, build_models
from stages.methods.sas.points import GAUSSIANS, SCAN, FusionPoints, fusion_points, gaussian_points, scan_points
from stages.methods.sas.projection import VISIBILITY_THRESHOLD, PointFeatureFusion

log = logging.getLogger(__name__)


@dataclass
class SasEvalConfig:
    """fusion: single | add | linear | capability; model: the model used alone (single); tau: Eq. 8 temperature;
    visibility_threshold: relative depth agreement of the occlusion test; text_dim: oracle text-embedding size;
    min_alpha: with Gaussian points, pixels whose rendered opacity is below it have no depth."""

    fusion: Literal["single", "add", "linear", "capability"] = "capability"
    model: str | None = None
    tau: float = 0.1
    visibility_threshold: float = VISIBILITY_THRESHOLD
    text_dim: int = 512
    min_alpha: float = 0.5


@dataclass
class SasDistilledEvalConfig:
    """The distilled network's evaluation has no parameters of its own (its store holds the text features)."""


def model_point_features(scene: Store, models: list[ClassModel], vocabulary: list[str], text: np.ndarray,
                         threshold: float, points: FusionPoints | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """Per model the text-aligned point features [P, D] fused over the training views; and [P] seen by any view.
    Models read the views' pixels or GT label maps (oracle models), whichever they need. ``points``: the points and
    their views' depth (default: the scan's points and the sensor depth)."""
    points = scan_points(scene) if points is None else points
    labels, pixels = any(not m.reads_pixels for m in models), any(m.reads_pixels for m in models)
    needed = (("depth",) if points.geometry is None else ()) + (("gt_semantic", "gt_instance") if labels else ())
    for name in needed:
        if name not in scene:
            raise StoreError(f"{scene.path}: SAS's occlusion test and oracle models need {name!r}")
    categories = list(scene.attrs["categories"])
    to_vocab = np.array([vocabulary.index(c) if c in vocabulary else -1 for c in categories] + [-1])
    fusions = [PointFeatureFusion(points.xyz, text.shape[1], threshold) for _ in models]
    intrinsics, poses = scene.load("intrinsics"), scene.load("world_to_camera")
    train = np.nonzero(~scene.load("is_test"))[0]
    for view in tqdm(train, desc="point features", unit="view", mininterval=5):
        semantic = instance = None
        if labels:
            gt = scene["gt_semantic"][int(view)]
            semantic, instance = to_vocab[np.where(gt < 0, len(categories), gt)], scene["gt_instance"][int(view)]
        image = ImageInputs(scene["images"][int(view)] if pixels else None, semantic, instance, int(view))
        depth = points.depth(int(view))
        visibility = fusions[0].visibility(intrinsics[view], poses[view], depth)  # the same points in every fusion
        for model, fusion in zip(models, fusions):
            fusion.add_view_classes(model.classify(image, vocabulary), text, intrinsics[view], poses[view], depth,
                                    visibility)
    return [f.mean() for f in fusions], fusions[0].count > 0


def fused_features(cfg: SasEvalConfig, features: list[np.ndarray], names: list[str], capability: np.ndarray,
                   text: np.ndarray) -> np.ndarray:
    """The point features of the configured row: one model alone or the two models fused."""
    if cfg.fusion == "single":
        if cfg.model not in names:
            raise ValueError(f"sas evaluation: fusion 'single' needs model in {names}, got {cfg.model!r}")
        return features[names.index(cfg.model)]
    if len(features) != 2:
        raise ValueError(f"sas evaluation: Eq. 6-8 fuse two models; the capability store has {names}")
    cap = filled(capability)
    return fuse(features[0], features[1], text, cfg.fusion, cap[0], cap[1], cfg.tau)


def subset_confusions(point_feats: np.ndarray, seen: np.ndarray, text: np.ndarray, vocabulary: list[str],
                      points_semantic: np.ndarray, categories: list[str]) -> dict[int, np.ndarray]:
    """Confusion [C, C+1] per ScanNet subset: each seen point's argmax over the subset's text features."""
    out = {}
    for size, subset in SCANNET_SUBSETS.items():
        known = [n for n in subset if n in vocabulary]
        sims = point_feats @ unit(text[[vocabulary.index(n) for n in known]]).T
        pred = np.array([subset.index(n) for n in known])[sims.argmax(-1)]
        pred = np.where(seen, pred, -1)
        out[size] = confusion_matrix(subset_labels(points_semantic, categories, subset), pred, len(subset))
    return out


def test_view_queries(scene: Store, point_class: np.ndarray, vocabulary: list[str],
                      masks: QueryMasks | None = None, points: FusionPoints | None = None) -> dict[str, float]:
    """IoU per category present in the test views: pixels take their back-projected nearest point's class; ``masks``
    keeps each category's mask on the first test view showing it; ``points``: the points of ``point_class`` and the
    depth the pixels are back-projected with (default: the scan's points and the sensor depth)."""
    points = scan_points(scene) if points is None else points
    categories = list(scene.attrs["categories"])
    tree = cKDTree(points.xyz)
    intrinsics, poses = scene.load("intrinsics"), scene.load("world_to_camera")
    ious: dict[str, list[float]] = {}
    for position, view in enumerate(np.nonzero(scene.load("is_test"))[0]):
        depth, gt = points.depth(int(view)), scene["gt_semantic"][int(view)]
        h, w = depth.shape
        yy, xx = np.mgrid[0:h, 0:w] + 0.5
        rays = np.stack([xx, yy, np.ones_like(xx)], -1).reshape(-1, 3) @ np.linalg.inv(intrinsics[view]).T
        cam = rays * depth.reshape(-1, 1)
        world = (cam - poses[view][:3, 3]) @ poses[view][:3, :3]
        pred = point_class[tree.query(world, k=1)[1]].reshape(h, w)
        pred = np.where(depth > 0, pred, -1)
        for c in np.unique(gt[gt >= 0]):
            name = categories[int(c)]
            k = vocabulary.index(name) if name in vocabulary else -2
            ious.setdefault(name, []).append(mask_iou(pred == k, gt == c))
            if masks is not None:
                masks.keep(name, position, pred == k)
    return {name: float(np.mean(v)) for name, v in sorted(ious.items())}


@dataclass
class FusedPoints:
    """The configured row's point features [P, D], [P] seen by a training view, the vocabulary's text features [C, D]
    and the long-tail vocabulary's ``LONG_TAIL_NAMES`` [160, D], both from the shared text encoder."""

    features: np.ndarray
    seen: np.ndarray
    text: np.ndarray
    vocabulary: list[str]
    long_tail_text: np.ndarray
    points: FusionPoints


def fused_scene_features(scene: Store, capability: Store, cfg: SasEvalConfig, context: ModelContext | None = None,
                         points: FusionPoints | None = None) -> FusedPoints:
    """The configured row's point features and text features over the capability store's vocabulary; real models
    are loaded in ``context`` (default: on the CPU); ``points``: default the scan's points with the sensor depth."""
    points = scan_points(scene) if points is None else points
    vocabulary = list(capability.attrs["vocabulary"])
    missing = sorted(set(scene.attrs["categories"]) - set(vocabulary))
    if missing:
        raise StoreError(f"{capability.path}: the vocabulary lacks the scene categories {missing}")
    models = build_models(capability.attrs["model_params"], context or ModelContext())
    text = alignment_text(models, vocabulary, cfg.text_dim)
    features, seen = model_point_features(scene, models, vocabulary, text, cfg.visibility_threshold, points)
    fused = fused_features(cfg, features, [m.name for m in models], capability.load("capability"), text)
    log.info("sas %s%s: %d of %d %s points seen by a training view", cfg.fusion,
             f" ({cfg.model})" if cfg.model else "", int(seen.sum()), len(seen), points.source)
    long_tail = alignment_text(models, LONG_TAIL_NAMES, cfg.text_dim)
    return FusedPoints(fused, seen, text, vocabulary, long_tail, points)


def point_rows(scene: Store, point_feats: np.ndarray, seen: np.ndarray, text: np.ndarray,
               vocabulary: list[str], long_tail_text: np.ndarray | None, points: FusionPoints | None = None
               ) -> SemanticResult:
    """The ScanNet 3D protocol, the long-tail K-class protocol (when ``long_tail_text`` is given) and the per-view 2D
    queries of per-point features (unseen points are a miss); ``points``: the points of the features (default the
    scan's); scan points take their nearest Gaussian's feature when they are Gaussian centres."""
    points = scan_points(scene) if points is None else points
    if "points_semantic" not in scene:
        raise StoreError(f"{scene.path}: no 'points_semantic' ground truth to evaluate against")
    categories = list(scene.attrs["categories"])
    points_semantic = scene.load("points_semantic")
    index, protocol = points.of_scan_points()
    scan_feats, scan_seen = point_feats[index], seen[index]
    confusions = subset_confusions(scan_feats, scan_seen, text, vocabulary, points_semantic, categories)
    long_tail = None
    if long_tail_text is not None:
        long_tail = long_tail_confusions(scan_feats, scan_seen, long_tail_text, points_semantic, categories)
        if outside := unmapped(categories, LONG_TAIL_NAMES):
            log.warning("long-tail protocol: scene categories %s are in no K vocabulary; their points are ignored",
                        outside)
    point_class = np.where(seen, (point_feats @ unit(text).T).argmax(-1), -1)
    masks = QueryMasks.empty()
    return SemanticResult(confusions, test_view_queries(scene, point_class, vocabulary, masks, points),
                          points_protocol=protocol, query_masks=masks, long_tail=long_tail)


@register("evaluation", "sas")
def evaluate_sas(call: StageCall) -> SemanticResult:
    """The configured row (one model or a fusion) in the ScanNet 3D protocol and the per-view 2D queries."""
    cfg = config_from_params(SasEvalConfig, call.options, "sas evaluation")
    scene_path, capability_path = call.require("scene", "capability")
    scene = read_store("scene", scene_path)
    points = fusion_points(scene, call.inputs.get("gaussians"), call.device, cfg.min_alpha)
    fused = fused_scene_features(scene, read_store("capability", capability_path), cfg,
                                 ModelContext(call.device, call.weights_dir), points)
    return point_rows(scene, fused.features, fused.seen, fused.text, fused.vocabulary, fused.long_tail_text, points)


@register("evaluation", "sas_distilled")
def evaluate_sas_distilled(call: StageCall) -> SemanticResult:
    """SAS Sec. 3.5 inference: the distilled network's point features against the text features, no post-processing
    (every point has a prediction, seen by a training view or not); the long-tail rows when the store keeps the
    long-tail text features (stores written before it have none). A network distilled on Gaussian centres needs the
    same ``gaussians`` input (its centres and rendered depth)."""
    config_from_params(SasDistilledEvalConfig, call.options, "sas_distilled evaluation")
    scene_path, distilled_path = call.require("scene", "distilled")
    scene, distilled = read_store("scene", scene_path), read_store("distilled_points", distilled_path)
    feats = distilled.load("point_features").astype(np.float64)
    points = scan_points(scene)
    if distilled.attrs.get("points_source", SCAN) == GAUSSIANS:  # trained on Gaussian centres (scene without depth)
        (gaussians,) = call.require("gaussians")
        points = gaussian_points(scene, gaussians, call.device, distilled.attrs["min_alpha"])
    if len(feats) != len(points.xyz):
        raise StoreError(f"{distilled_path}: {len(feats)} point features for {len(points.xyz)} {points.source} "
                         "points")
    log.info("sas distilled (%s, backend %s)", distilled.attrs["schedule"], distilled.attrs["backend"])
    long_tail = None
    if "long_tail_text_features" in distilled:
        if list(distilled.attrs["long_tail_vocabulary"]) != LONG_TAIL_NAMES:
            raise StoreError(f"{distilled_path}: its long-tail vocabulary differs from this version's LONG_TAIL")
        long_tail = distilled.load("long_tail_text_features").astype(np.float64)
    return point_rows(scene, feats, np.ones(len(feats), bool), distilled.load("text_features").astype(np.float64),
                      list(distilled.attrs["vocabulary"]), long_tail, points)
