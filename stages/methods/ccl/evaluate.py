"""Semantic evaluation of a CCL-LGS field: LERF 2D protocol (per-query mIoU and localization accuracy), 3D-OVS 2D
protocol (mIoU of the per-pixel argmax over the class list) and the ScanNet 3D protocol through the 3D query.

LERF: every category present in the test views' ground truth is a text query, evaluated on the test views that
show it (mask from ``CCLField.query_2d``); localization counts a hit when the argmax of the relevance map, smoothed
by a box filter of ``smooth`` x the image width (LangSplat's averaging filter), lies in the box of the GT mask.
3D-OVS: the class list is the categories present in the test views. ScanNet: each GT point takes the class of its
nearest Gaussian, a Gaussian's class being ``CCLField.gaussian_classes`` over the subset.

The same queries answer the text-query datasets (``evaluate_annotations``, ``text_query`` ``ccl``): each annotated
(view, query) pair's mask and smoothed relevance as the LERF protocol above makes them, 3D-OVS class maps as above
over the dataset's class list.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.annotations import QueryAnnotations
from stages.lib.cli import StageCall, config_from_params
from stages.lib.instance_gaussians import Cameras
from stages.lib.semantic_metrics import (
    SCANNET_SUBSETS,
    QueryMasks,
    SemanticResult,
    class_list_confusion,
    confusion_matrix,
    gaussian_of_points,
    localization_hit,
    mask_iou,
    points_protocol,
    present_classes,
    subset_labels,
)
from stages.lib.store import Store, StoreError, read_store
from stages.methods import register
from stages.methods.ccl.query import CCLField


@dataclass
class CCLEvalConfig:
    """Evaluation knobs: relevance ``threshold`` after min-max normalisation (LangSplat's 0.4), localization
    smoothing as a fraction of the image width, Eq. 10 ``temperature``, views decoded per rendering batch."""

    threshold: float = 0.4
    smooth: float = 0.03
    temperature: float = 1.0
    views_per_batch: int = 4


@dataclass
class CCLEvaluation:
    """Per-query IoU and localization (LERF), the 3D-OVS confusion [C, C+1] over ``classes``, ScanNet confusions, and
    each query's mask on the first test view showing it."""

    query_iou: dict[str, float]
    localization: dict[str, float]
    classes: list[str]
    ovs_confusion: np.ndarray
    scannet: dict[int, np.ndarray]
    query_masks: QueryMasks


def smooth_map(relevance: torch.Tensor, fraction: float) -> torch.Tensor:
    """Box-filtered relevance [H,W] (odd kernel of ``fraction`` x width, at least 1; borders averaged over the
    pixels inside)."""
    k = max(1, int(round(fraction * relevance.shape[-1])) // 2 * 2 + 1)
    if k == 1:
        return relevance
    return torch.nn.functional.avg_pool2d(relevance[None, None].float(), k, 1, k // 2,
                                          count_include_pad=False)[0, 0]


def decoded_test_views(field: CCLField, scene: Store, views: np.ndarray, per_batch: int,
                       device: torch.device) -> torch.Tensor:
    """Decoded prototype indices [L,T,H,W] of the given views of a scene store."""
    return decoded_views(field, Cameras.from_scene(scene, views, device), per_batch)


def decoded_views(field: CCLField, cams: Cameras, per_batch: int) -> torch.Tensor:
    """Decoded prototype indices [L,C,H,W] of the cameras' views (rendered in batches of ``per_batch``)."""
    parts = []
    with torch.no_grad():
        for start in range(0, len(cams), per_batch):
            parts.append(field.pixel_prototypes(field.render_features(cams[start:start + per_batch])))
    return torch.cat(parts, dim=1)


def lerf_2d(field: CCLField, index: torch.Tensor, gt: np.ndarray, categories: list[str],
            cfg: CCLEvalConfig, masks: QueryMasks | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """IoU and localization accuracy per query (category present in ``gt`` [T,H,W]), mean over the views showing it;
    ``masks`` keeps each query's mask on the first of them."""
    ious, hits = {}, {}
    for c in tqdm([int(c) for c in np.unique(gt) if c >= 0], desc="text queries", unit="query"):
        name = categories[c]
        per_view_iou, per_view_hit = [], []
        for t in np.nonzero((gt == c).any(axis=(1, 2)))[0]:
            with torch.no_grad():
                mask, relevance = field.query_2d(name, index[:, t], cfg.threshold)
            target = gt[t] == c
            if masks is not None:
                masks.keep(name, int(t), mask.cpu().numpy())
            per_view_iou.append(mask_iou(mask.cpu().numpy(), target))
            per_view_hit.append(localization_hit(smooth_map(relevance, cfg.smooth).cpu().numpy(), target))
        ious[name], hits[name] = float(np.mean(per_view_iou)), float(np.mean(per_view_hit))
    return ious, hits


def ovs_2d(field: CCLField, index: torch.Tensor, gt: np.ndarray, categories: list[str]) -> tuple[list[str], np.ndarray]:
    """3D-OVS protocol: the class list (categories present) and the confusion [C, C+1] of the per-pixel argmax."""
    classes = present_classes(gt, categories)
    with torch.no_grad():
        pred = field.class_map(index, classes).cpu().numpy()
    return classes, class_list_confusion(gt, pred, categories, classes)


def scannet_3d(field: CCLField, points: np.ndarray, points_semantic: np.ndarray,
               categories: list[str]) -> dict[int, np.ndarray]:
    """Confusion [C, C+1] per ScanNet class subset; subset classes outside the vocabulary are never predicted."""
    nearest, _ = gaussian_of_points(points, field.gaussians["means"].cpu().numpy())
    out = {}
    for size, subset in SCANNET_SUBSETS.items():
        known = [n for n in subset if n in field.vocabulary]
        with torch.no_grad():
            best = field.gaussian_classes(known).cpu().numpy()
        labels = np.array([subset.index(n) for n in known])[best]
        out[size] = confusion_matrix(subset_labels(points_semantic, categories, subset), labels[nearest], len(subset))
    return out


def evaluate(field: CCLField, scene: Store, cfg: CCLEvalConfig, device: torch.device) -> CCLEvaluation:
    """All three protocols on a scene store with ``gt_semantic`` and ``points_semantic``."""
    categories = list(scene.attrs["categories"])
    test = np.nonzero(scene.load("is_test"))[0]
    gt = np.stack([scene["gt_semantic"][int(v)] for v in test])
    index = decoded_test_views(field, scene, test, cfg.views_per_batch, device)
    masks = QueryMasks.empty()
    ious, hits = lerf_2d(field, index, gt, categories, cfg, masks)
    classes, ovs = ovs_2d(field, index, gt, categories)
    confusions = scannet_3d(field, scene.load("points_xyz"), scene.load("points_semantic"), categories)
    return CCLEvaluation(ious, hits, classes, ovs, confusions, masks)


@register("evaluation", "ccl")
def run_evaluation(call: StageCall) -> SemanticResult:
    """evaluate_semantic, CCL-LGS: inputs ``gaussians`` (the field), ``codebook`` (its prototypes store), ``scene``;
    parameters: ``CCLEvalConfig``."""
    gaussians, prototypes, scene_path = call.require("gaussians", "codebook", "scene")
    cfg = config_from_params(CCLEvalConfig, call.options, "CCL-LGS evaluation")
    scene = read_store("scene", scene_path)
    for name in ("points_semantic", "gt_semantic"):
        if name not in scene:
            raise StoreError(f"{scene.path}: no {name!r} ground truth to evaluate against")
    field = CCLField.load(gaussians, prototypes, call.device, temperature=cfg.temperature)
    missing = sorted(set(scene.attrs["categories"]) - set(field.vocabulary))
    if missing:
        raise StoreError(f"{prototypes}: the vocabulary lacks the scene categories {missing}")
    ev = evaluate(field, scene, cfg, call.device)
    means = field.gaussians["means"].cpu().numpy()
    return SemanticResult(ev.scannet, ev.query_iou, ev.localization, ev.classes, ev.ovs_confusion,
                          points_protocol=points_protocol(scene.load("points_xyz"), means), query_masks=ev.query_masks)


@dataclass
class CCLAnnotationPredictions:
    """A CCL-LGS field as the text-query protocols read it (``stages.lib.annotations.AnnotationPredictor``)."""

    field: CCLField
    cfg: CCLEvalConfig

    def predict(self, annotations: QueryAnnotations, cams: Cameras) -> dict[str, np.ndarray]:
        index = decoded_views(self.field, cams, self.cfg.views_per_batch)  # [L,A,H,W]
        with torch.no_grad():
            if annotations.protocol == "3dovs":
                return {"class_maps": self.field.class_map(index, annotations.queries).cpu().numpy()}
            views = sorted(set(annotations.view.tolist()))
            masks = np.zeros(annotations.masks.shape, bool)
            relevance = np.zeros(annotations.masks.shape, np.float32)
            for m, (view, q) in enumerate(zip(annotations.view.tolist(), annotations.query.tolist())):
                mask, rel = self.field.query_2d(annotations.queries[q], index[:, views.index(view)], self.cfg.threshold)
                masks[m] = mask.cpu().numpy()
                relevance[m] = smooth_map(rel, self.cfg.smooth).cpu().numpy()
        return {"masks": masks, "relevance": relevance}


@register("text_query", "ccl")
def text_query(call: StageCall) -> CCLAnnotationPredictions:
    """evaluate_annotations, CCL-LGS: inputs ``gaussians`` (the field) and ``codebook`` (its prototypes store);
    parameters: ``CCLEvalConfig``."""
    gaussians, prototypes = call.require("gaussians", "codebook")
    cfg = config_from_params(CCLEvalConfig, call.options, "CCL-LGS text query")
    return CCLAnnotationPredictions(CCLField.load(gaussians, prototypes, call.device, temperature=cfg.temperature), cfg)
