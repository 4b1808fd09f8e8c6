"""OpenInsGaussian's 3D-2D association (supplement A.4), registered as the ``association`` rule ``openins_eq8``.

On every train view each instance (codebook leaf) is rendered alone and binarised, pi(M^i); every 2D mask of the
chosen level is scored by Eq. 8, S_ij = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1), and the best mask per instance and
view is kept. The L1 norm is taken on OpenGaussian's rendered scale by default (``feature_disagreement``). The
associated masks' CLIP features are fused across views (``fuse_language``) into one language
feature per instance, written to an ``association`` store with each instance's argmax vocabulary label.

``fill_unviewed_k`` > 0 (ours, off by default): an instance that no view associates (it has no language feature, so
every Gaussian of it is left unlabelled) takes the language feature of the associated instance most frequent among
the ``fill_unviewed_k`` nearest Gaussians of its members (``nearest_viewed_instance``). Small codebook leaves whose
rendering never passes the binarisation, and leaves of Gaussians that no view sees, are such instances.
``fill_min_views`` n (ours, 1 by default) counts an instance with fewer than n associated views as unviewed too
(``fill_language``): with one view an instance's language is that one mask's CLIP feature, wrong whenever that
mask's feature is. Measured against ``min_score`` 0, which gives such instances (leaves of large surfaces, whose
IoU with the surface's large masks is small) their other views back, it was the weaker remedy and stays off
(README "OpenInsGaussian on scans").

``purify_k`` > 0 (ours, off by default): leaf purification by the associated masks, after Eq. 8. The paper takes a
Gaussian's instance to be its codebook leaf (Eq. 5-6); a leaf that merged a thin object with some of the wall it is
flat on is associated with the object's masks, and its wall Gaussians take the object's label. Every Gaussian's
``consistency`` with a leaf is the share of its blending weight, over the views where that leaf has an associated
mask, that falls inside that mask (``association_consistency``); a Gaussian moves to the leaf among its
``purify_k`` nearest Gaussians' leaves of highest consistency when that exceeds its own leaf's by more than
``purify_margin`` (``purify_leaves``). The refined leaf per Gaussian is written to the store (``leaf_id``) and the
queries label by it; the codebook is unchanged. ``purify_by: centre`` measures consistency by where the Gaussian's
centre lands instead (the share of the views that see it and where the leaf has a mask in which its projected
centre falls, Proto-SaGa's Eq. 9 test): a wall Gaussian beside a picture whose footprint reaches into the picture's
masks has its centre on the wall's pixels, so its blending weight no longer ties it to the picture's leaf.
``purify_visible_margin`` m counts only the views where the centre is at the front (z_i <= (1 + m) times the
view's expected depth at its pixel): a wall Gaussian beside a picture that stands a few cm off the wall is hidden
behind the picture's edge in oblique views, where its centre projects into the picture's mask.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.cli import StageCall, config_from_params
from stages.lib.instance_gaussians import (
    Cameras,
    InstanceGaussians,
    instance_visibility,
    load_instance_gaussians,
    render_alpha,
    render_channels,
)
from stages.lib.mask_means import flat_mask_index, mask_mean_features, mask_means_from_labels, masked_count
from stages.lib.neighbours import knn_indices
from stages.lib.open_vocabulary import label_instances
from stages.lib.projection import mask_of_gaussians, project_centres, visible_gaussians
from stages.lib.rendered_depth import Camera, activated_geometry, rendered_depth
from stages.lib.store import Store, StoreError, read_store, write_store
from stages.methods import register

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Eq. 8
# ----------------------------------------------------------------------------------------------
def masks_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of boolean masks a [I,H,W] and b [J,H,W] -> [I,J]."""
    af, bf = a.flatten(1).float(), b.flatten(1).float()
    inter = af @ bf.T
    union = af.sum(1)[:, None] + bf.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


FEATURE_DISTANCES = ("rendered", "unit", "mean")


def feature_disagreement(a: Tensor, b: Tensor, distance: str = "rendered") -> Tensor:
    """The L1 term of Eq. 8, |a - b|_1 over the last dim, clipped to [0,1] so that 1 - it lies in [0,1].

    Eq. 8 writes the L1 norm (a sum over the dims, as OpenGaussian's association code computes it). OpenGaussian, whose
    training OpenInsGaussian follows, normalises every Gaussian's feature u and renders (u + 1) / 2, so its norm is
    half the L1 distance of the unit features. ``rendered`` (default): that, |u_a - u_b|_1 / 2 of the unit-normalised
    a and b (our fields render raw features of norm 1.4-5.5 unless trained with ``unit_features``, so Eq. 8 compares
    their directions). ``unit``: |u_a - u_b|_1, twice as strict (a mask whose mean is another instance's mostly scores
    0). ``mean``: the raw features' L1 norm divided by D (our reading until 2026-11-30; with raw norms near 3 it is on
    about the ``rendered`` scale).
    """
    if distance in ("rendered", "unit"):
        a, b = torch.nn.functional.normalize(a, dim=-1), torch.nn.functional.normalize(b, dim=-1)
        l1 = (a - b).abs().sum(-1) * (0.5 if distance == "rendered" else 1.0)
    elif distance == "mean":
        l1 = (a - b).abs().mean(-1)
    else:
        raise ValueError(f"feature distance must be one of {FEATURE_DISTANCES}, not {distance!r}")
    return l1.clamp(0, 1)


def association_scores(instance_masks: Tensor, instance_features: Tensor, sam_masks: Tensor,
                       feature_map: Tensor, distance: str = "rendered") -> Tensor:
    """Eq. 8: S_ij = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1).

    pi(M^i): instance i rendered alone and binarised [I,H,W]; M^i its (unit) instance feature [I,D];
    P^j: the rendered feature map averaged inside SAM mask B^j; the L1 term as ``feature_disagreement``.
    """
    iou = masks_iou(instance_masks, sam_masks)
    filled = mask_mean_features(feature_map, sam_masks)
    return iou * (1 - feature_disagreement(instance_features[:, None], filled[None], distance))


def best_mask_per_instance(scores: Tensor, min_score: float = 0.0) -> Tensor:
    """Index of the best-scoring mask per instance in one view, -1 where none scores above ``min_score``."""
    best, idx = scores.max(dim=1)
    return torch.where(best > min_score, idx, torch.full_like(idx, -1))


def label_map_scores(alone: Tensor, instance_feature: Tensor, labels: Tensor, mask_means: Tensor,
                     mask_areas: Tensor, distance: str = "rendered") -> Tensor:
    """Eq. 8 of one instance against every mask of C views, [C,J]: S_j = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1).

    Equal to ``association_scores`` on dense masks (same ``distance``), computed from label maps by counting
    instead of materialising J dense masks per view.
    ``alone`` [C,H,W] bool is pi(M^i), the instance rendered alone and binarised.
    """
    flat, inside = flat_mask_index(labels, mask_areas.shape[1])
    inter = masked_count(flat, inside & alone.reshape(-1), mask_areas.numel()).reshape(mask_areas.shape)
    union = alone.flatten(1).sum(1, keepdim=True) + mask_areas - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    return iou * (1 - feature_disagreement(instance_feature, mask_means, distance))


# ----------------------------------------------------------------------------------------------
# Association of every instance with at most one mask per view
# ----------------------------------------------------------------------------------------------
@dataclass
class AssociationConfig:
    """Knobs of the association and fusion (the ``associate`` stage's params)."""

    level: int = 0  # mask level (index into the masks store's levels) whose masks are associated
    alpha_threshold: float = 0.5  # binarisation of the instance rendered alone, pi(M^i)
    # A view's best mask is kept only if its Eq. 8 score exceeds this (ours; the paper keeps every view's best mask):
    # where an instance is hidden, its footprint still overlaps some unrelated mask a little. The scans recipe sets
    # 0: a floor or wall leaf's matches with its surface's large masks score below 0.05 (README "OpenInsGaussian on
    # scans").
    min_score: float = 0.05
    tau: float = 10.0  # temperature of the cross-view agreement weights; 0 = plain mean (OpenGaussian)
    score_weighted: bool = True  # also weight every view by its Eq. 8 score
    # Eq. 8's |M^i - P^j|_1 (``feature_disagreement``): "rendered", on OpenGaussian's scale (half the L1 norm of the
    # unit features); "unit", the L1 norm of the unit features; "mean", the raw features' divided by D (until
    # 2026-11-30)
    feature_distance: str = "rendered"
    view_batch: int = 16  # cameras rendered per call
    fill_unviewed_k: int = 0  # ours: instances without an associated view take their spatial neighbours' language
    fill_min_views: int = 1  # ours: ... and so do instances with fewer associated views than this
    purify_k: int = 0  # ours: Gaussians may move to a leaf of their purify_k nearest Gaussians (0: off)
    purify_margin: float = 0.4  # ... when its associated masks hold this much more of their weight than their own's
    purify_by: str = "weight"  # ours: consistency from the blending weight inside the masks, or "centre": its centre
    # purify_by centre: a view counts where the centre is at the front, z <= (1 + margin) x rendered depth (None: where
    # the Gaussian has any blending weight inside a mask, partly hidden or not)
    purify_visible_margin: float | None = None

    def __post_init__(self) -> None:
        if self.feature_distance not in FEATURE_DISTANCES:
            raise ValueError(f"feature_distance must be one of {FEATURE_DISTANCES}, not {self.feature_distance!r}")
        if self.fill_min_views < 1:
            raise ValueError(f"fill_min_views must be >= 1, not {self.fill_min_views}")
        if self.purify_by not in ("weight", "centre"):
            raise ValueError(f"purify_by must be 'weight' or 'centre', not {self.purify_by!r}")


@dataclass
class Associations:
    """One row per (instance, view) pair with an associated mask: the mask's label-map id and its Eq. 8 score."""

    instance: Tensor
    view: Tensor
    mask: Tensor
    score: Tensor


def associate_instances(g: InstanceGaussians, centres: Tensor, cams: Cameras, labels: Tensor,
                        cfg: AssociationConfig, progress: bool = True) -> Associations:
    """Best mask per instance per view by Eq. 8 (supplement A.4).

    ``labels`` [V,H,W] are the chosen level's label maps of the V cameras. The full feature map is rendered once per
    view for P^j; every instance is rendered alone only on the views whose image its Gaussians reach.
    """
    num_masks = int(labels.max().item()) + 1 if labels.numel() else 0
    mask_means, mask_areas = _all_mask_means(g, cams, labels, num_masks, cfg.view_batch)
    visible = instance_visibility(g, cams)
    members = g.members()
    seen_somewhere = visible.any(1).tolist()
    todo = [k for k in range(g.num_instances) if len(members[k]) and seen_somewhere[k]]
    rows: list[tuple[Tensor, ...]] = []
    for k in tqdm(todo, desc="associate instances", unit="instance", disable=not progress):
        alone_g = g.take(members[k])
        views = visible[k].nonzero()[:, 0]
        for batch in torch.split(views, cfg.view_batch):
            alone = render_alpha(alone_g, cams[batch]) > cfg.alpha_threshold
            scores = label_map_scores(alone, centres[k], labels[batch], mask_means[batch], mask_areas[batch],
                                      cfg.feature_distance)
            best = best_mask_per_instance(scores, cfg.min_score)
            rows.append((torch.full_like(best, k), batch, best, scores.gather(1, best.clamp_min(0)[:, None])[:, 0]))
    if not rows:
        empty = torch.zeros(0, dtype=torch.long, device=g.device)
        return Associations(empty, empty, empty, empty.float())
    instance, view, mask, score = (torch.cat(col) for col in zip(*rows))
    hit = mask >= 0  # filtered once at the end, so the loop never waits for the GPU
    return Associations(instance[hit], view[hit], mask[hit], score[hit])


def _all_mask_means(g: InstanceGaussians, cams: Cameras, labels: Tensor, num_masks: int,
                    batch: int) -> tuple[Tensor, Tensor]:
    """P^j and mask areas of every view from the full rendered feature maps, [V,J,D] and [V,J]."""
    means, areas = [], []
    for start in tqdm(range(0, len(cams), batch), desc="feature maps", unit="batch", leave=False):
        feats, _ = render_channels(g, g.features, cams[start:start + batch])
        m, a = mask_means_from_labels(feats, labels[start:start + batch], num_masks)
        means.append(m)
        areas.append(a)
    return torch.cat(means), torch.cat(areas)


# ----------------------------------------------------------------------------------------------
# Cross-view fusion of the associated CLIP features
# ----------------------------------------------------------------------------------------------
def fusion_weights(features: Tensor, group: Tensor, num_groups: int, tau: float,
                   scores: Tensor | None = None) -> Tensor:
    """Context-aware cross-view weights, one per row (an associated view of instance ``group[row]``).

    w_v = softmax_v(tau * a_v [+ log s_v]) within each instance, with the agreement a_v = mean_{u != v} cos(f_v, f_u)
    of view v's CLIP feature with the instance's other views (0 for an instance seen once) and s_v the optional
    Eq. 8 score (so w_v is proportional to s_v exp(tau a_v)). tau = 0 without scores gives equal weights, i.e. the
    plain mean of OpenGaussian. This is our reading of OpenInsGaussian's context-aware feature fusion: the
    supplement (A.4) describes it, the main paper's formula was not available to us.
    """
    f = torch.nn.functional.normalize(features.float(), dim=-1)
    sums = f.new_zeros(num_groups, f.shape[1]).index_add_(0, group, f)
    count = torch.bincount(group, minlength=num_groups).to(f.dtype)
    self_sim = (f * f).sum(-1)
    agreement = ((f * sums[group]).sum(-1) - self_sim) / (count[group] - 1).clamp_min(1)
    logits = tau * agreement
    if scores is not None:
        logits = logits + torch.log(scores.float().clamp_min(1e-12))
    peak = f.new_full((num_groups,), -torch.inf).scatter_reduce(0, group, logits, "amax")
    e = torch.exp(logits - peak[group])
    return e / f.new_zeros(num_groups).index_add_(0, group, e)[group]


def fuse_language(features: Tensor, group: Tensor, num_groups: int, tau: float,
                  scores: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One L2-normalised language feature per instance, sum_v w_v f_v (``fusion_weights``), zero rows for instances
    with no associated view; returns ([K,E], views per instance [K])."""
    f = torch.nn.functional.normalize(features.float(), dim=-1)
    w = fusion_weights(f, group, num_groups, tau, scores)
    fused = f.new_zeros(num_groups, f.shape[1]).index_add_(0, group, w[:, None] * f)
    return torch.nn.functional.normalize(fused, dim=-1), torch.bincount(group, minlength=num_groups)


def nearest_viewed_instance(leaf: Tensor, means: Tensor, viewed: Tensor, k: int) -> Tensor:
    """[K]: per instance, the instance whose language it takes. Itself where ``viewed`` [K]; otherwise the viewed
    instance most frequent among the k nearest Gaussians (``means`` [N,3]) of its members (``leaf`` [N], -1 none),
    ties to the smaller id; itself where no member has a viewed neighbour."""
    num = len(viewed)
    source = torch.arange(num, device=leaf.device)
    todo = (leaf >= 0) & ~viewed[leaf.clamp_min(0)]
    if not todo.any():
        return source
    other = leaf[knn_indices(means, k)[todo]]  # [M,k] the neighbours' instances
    own = leaf[todo][:, None].expand_as(other)
    ok = (other >= 0) & viewed[other.clamp_min(0)]
    votes = torch.bincount(own[ok] * num + other[ok], minlength=num * num).reshape(num, num)
    return torch.where(~viewed & (votes.max(1).values > 0), votes.argmax(1), source)


def fill_language(language: Tensor, views: Tensor, leaf: Tensor, means: Tensor, k: int,
                  min_views: int = 1) -> Tensor:
    """[K,E]: every instance with fewer than ``min_views`` associated views (``views`` [K]) takes the language of the
    instance ``nearest_viewed_instance`` finds among those with at least that many; the others keep their own."""
    return language[nearest_viewed_instance(leaf, means, views >= min_views, k)]


# ----------------------------------------------------------------------------------------------
# Leaf purification by the associated masks (ours)
# ----------------------------------------------------------------------------------------------
def mask_blend_weights(g: InstanceGaussians, cam: Cameras, labels: Tensor, num_masks: int) -> Tensor:
    """[N,J]: per Gaussian its compositing weight summed over the pixels of each mask j of one view's label map
    ``labels`` [H,W] (-1: no mask), sum_{p in B^j} a_i(p) T_i(p); the gradient of the rendered mask indicators."""
    values = torch.zeros(len(g), num_masks, device=g.device, requires_grad=True)
    with torch.enable_grad():
        rendered, _ = render_channels(g, values, cam)
        inside = labels >= 0
        picked = rendered[0][inside].gather(1, labels[inside].long()[:, None]).sum()
        (grad,) = torch.autograd.grad(picked, values)
    return grad


def association_consistency(g: InstanceGaussians, cams: Cameras, labels: Tensor, assoc: Associations,
                            candidates: Tensor, by: str = "weight", visible_margin: float | None = None) -> Tensor:
    """[N,k]: consistency of Gaussian i with leaf ``candidates[i, c]`` (-1: none) over the views where the leaf has
    an associated mask (``labels`` [V,H,W] of the cameras ``assoc`` indexes): ``by="weight"``, the share of i's
    blending weight that lies inside the leaf's mask; ``by="centre"``, the share of those views rendering i (some
    blending weight inside a mask; with ``visible_margin``, only those where its centre is at the front of the view,
    ``visible_gaussians``) where i's projected centre falls inside the leaf's mask. -1 where the leaf has no
    associated view that renders i."""
    num_masks = int(labels.max().item()) + 1
    mask_of = torch.full((g.num_instances, len(cams)), -1, dtype=torch.long, device=g.device)
    mask_of[assoc.instance, assoc.view] = assoc.mask
    leaf = candidates.clamp_min(0)
    inside = torch.zeros(candidates.shape, device=g.device)
    total = torch.zeros(candidates.shape, device=g.device)
    for v in range(len(cams)):
        mask = mask_of[leaf, v]
        has = (mask >= 0) & (candidates >= 0)
        if by == "centre":
            pixel, depth = project_centres(g.means, cams.viewmats[v], cams.Ks[v], cams.width, cams.height)
            if visible_margin is None:
                has &= mask_blend_weights(g, cams[[v]], labels[v], num_masks).sum(1, keepdim=True) > 0
            else:
                camera = Camera(cams.viewmats[v].cpu().numpy(), cams.Ks[v].cpu().numpy(), cams.width, cams.height)
                depth_map = rendered_depth(activated_geometry(g), camera)
                has &= visible_gaussians(pixel, depth, depth_map, visible_margin)[:, None]
            inside += (has & (mask_of_gaussians(pixel, labels[v])[:, None] == mask)).float()
            total += has.float()
        else:
            weights = mask_blend_weights(g, cams[[v]], labels[v], num_masks)  # [N,J]
            inside += torch.where(has, weights.gather(1, mask.clamp_min(0)), 0.0)
            total += torch.where(has, weights.sum(1, keepdim=True).expand_as(mask), 0.0)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.full_like(total, -1.0))


def purify_leaves(candidates: Tensor, consistency: Tensor, margin: float) -> Tensor:
    """[N]: per Gaussian the candidate leaf of highest ``consistency`` [N,k] where it exceeds that of the Gaussian's
    own leaf, ``candidates[:, 0]``, by more than ``margin``; else the own leaf (also where the own leaf has no
    consistency, -1, or none at all)."""
    best, idx = consistency.max(1)
    own = consistency[:, 0]
    move = (best > own + margin) & (own >= 0) & (candidates[:, 0] >= 0)
    return torch.where(move, candidates.gather(1, idx[:, None])[:, 0], candidates[:, 0])


# ----------------------------------------------------------------------------------------------
# The associate stage with this rule
# ----------------------------------------------------------------------------------------------
def check_priors(scene: Store, masks: Store, features: Store, level: int) -> None:
    """Masks must cover the scene's views at its image size, features must align with the mask table."""
    for dim in ("V", "H", "W"):
        if masks.sizes[dim] != scene.sizes[dim]:
            raise StoreError(f"{masks.path}: {dim}={masks.sizes[dim]} but the scene {scene.path} has "
                             f"{dim}={scene.sizes[dim]}")
    if features.sizes["M"] != masks.sizes["M"]:
        raise StoreError(f"{features.path}: {features.sizes['M']} mask features but {masks.path} lists "
                         f"{masks.sizes['M']} masks")
    if not 0 <= level < masks.sizes["L"]:
        raise StoreError(f"{masks.path}: level {level} requested but the store has {masks.sizes['L']} levels")


def mask_rows(masks: Store, views: np.ndarray, level: int, num_masks: int) -> np.ndarray:
    """[len(views), J]: the mask-table row of mask id j in each view at ``level``, -1 where none."""
    lut = np.full((masks.sizes["V"], max(num_masks, 1)), -1, dtype=np.int64)
    view, lev, mid = masks.load("mask_view"), masks.load("mask_level"), masks.load("mask_id")
    sel = (lev == level) & (mid < lut.shape[1])
    lut[view[sel], mid[sel]] = np.nonzero(sel)[0]
    return lut[views]


def table_rows(assoc: Associations, lut: np.ndarray, masks: Store) -> np.ndarray:
    """The mask-table row of every association; a label id missing from the table is a broken masks store."""
    rows = lut[assoc.view.cpu().numpy(), assoc.mask.cpu().numpy()]
    if (rows < 0).any():
        raise StoreError(f"{masks.path}: label maps hold mask ids that the mask table does not list")
    return rows


@dataclass
class LevelAssociation:
    """Eq. 8 on one masks level of the train views: what the fusion and the diagnostics read."""

    gaussians: InstanceGaussians
    cams: Cameras
    train: np.ndarray  # scene view index of every camera
    label_maps: Tensor  # [V,H,W] the level's label maps of the train views
    assoc: Associations
    clip: Tensor  # [A,E] the CLIP feature of every association's mask


def associate_level(scene_path: str | Path, gaussians_path: str | Path, codebook_path: str | Path,
                    masks_path: str | Path, features: Store, cfg: AssociationConfig, device: str | torch.device,
                    progress: bool = True) -> LevelAssociation:
    """Read the stores, check the priors and associate every instance with the chosen level's train-view masks."""
    scene = read_store("scene", scene_path)
    masks = read_store("masks", masks_path)
    check_priors(scene, masks, features, cfg.level)
    gaussians, centres = load_instance_gaussians(gaussians_path, codebook_path, device)
    train = np.nonzero(~scene.load("is_test"))[0]
    labels = np.stack([masks["labels"][int(v), cfg.level] for v in train])
    if (labels < 0).all():
        raise StoreError(f"{masks_path}: no mask at level {cfg.level} on any of the {len(train)} train views, so "
                         "Eq. 8 has nothing to associate (check the masks stage's log: a model that found nothing?)")
    cams = Cameras.from_scene(scene, train, device)
    label_maps = torch.from_numpy(labels).to(device)
    with torch.no_grad():
        assoc = associate_instances(gaussians, centres, cams, label_maps, cfg, progress)
    rows = table_rows(assoc, mask_rows(masks, train, cfg.level, int(labels.max()) + 1), masks)
    clip = torch.from_numpy(features.load("mask_features")[rows]).to(device)
    return LevelAssociation(gaussians, cams, train, label_maps, assoc, clip)


@register("association", "openins_eq8")
def run_eq8_association(call: StageCall) -> None:
    """Associate every instance of ``gaussians`` + ``codebook`` with the ``masks`` of the train views (Eq. 8), fuse
    the ``features`` of the associated masks, and write the ``association`` store."""
    cfg = config_from_params(AssociationConfig, call.options, "openins_eq8 association")
    scene_path, gaussians_path, codebook_path, masks_path, features_path = call.require(
        "scene", "gaussians", "codebook", "masks", "features")
    features = read_store("features", features_path)
    device = call.device
    level = associate_level(scene_path, gaussians_path, codebook_path, masks_path, features, cfg, device)
    gaussians, assoc = level.gaussians, level.assoc
    language, views = fuse_language(level.clip, assoc.instance, gaussians.num_instances, cfg.tau,
                                    assoc.score if cfg.score_weighted else None)
    if cfg.fill_unviewed_k > 0:
        language = fill_language(language, views, gaussians.leaf_id, gaussians.means, cfg.fill_unviewed_k,
                                 cfg.fill_min_views)
    leaf = None
    if cfg.purify_k > 0:
        candidates = gaussians.leaf_id[knn_indices(gaussians.means, cfg.purify_k)]  # [N,k]
        candidates[:, 0] = gaussians.leaf_id  # the own leaf first, also where another Gaussian shares the centre
        consistency = association_consistency(gaussians, level.cams, level.label_maps, assoc, candidates,
                                              cfg.purify_by, cfg.purify_visible_margin)
        leaf = purify_leaves(candidates, consistency, cfg.purify_margin)
        log.info("purification moved %d of %d Gaussians to another leaf", int((leaf != gaussians.leaf_id).sum()),
                 len(leaf))
    text = features.load("text_features")
    label = label_instances(language, torch.from_numpy(text).to(device))
    log.info("associated %d masks; %d of %d instances have a language feature", len(assoc.instance),
             int((views > 0).sum()), gaussians.num_instances)
    with write_store("association", call.out, "associate", call.params, call.inputs) as w:
        w.write("instance_language", language.cpu().numpy().astype(np.float16))
        w.write("instance_views", views.cpu().numpy().astype(np.int32))
        w.write("instance_label", label.cpu().numpy().astype(np.int32))
        w.write("text_features", text)
        if leaf is not None:
            w.write("leaf_id", leaf.cpu().numpy().astype(np.int32))
        w.attrs.update(vocabulary=list(features.attrs["vocabulary"]), level=cfg.level, tau=cfg.tau,
                       num_associations=len(assoc.instance), feature_distance=cfg.feature_distance,
                       fill_unviewed_k=cfg.fill_unviewed_k, fill_min_views=cfg.fill_min_views, purify_k=cfg.purify_k,
                       purify_margin=cfg.purify_margin, purify_by=cfg.purify_by,
                       purify_visible_margin=cfg.purify_visible_margin)
