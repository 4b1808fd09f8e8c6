"""3D instances of a feature-Gaussian scene and their language (OpenInsGaussian supplement A.4).

A 3D instance is the set of Gaussians sharing a codebook leaf (``leaf_id``), described by the leaf's instance
feature M^i (``fine_centres[i]``). This module renders an instance alone, scores it against a view's 2D masks by
Eq. 8, S_ij = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1), keeps the best mask per instance and view, and fuses the
associated masks' CLIP features into one language feature per instance (``fuse_language``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.association import best_mask_per_instance
from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.render import render
from stages.lib.store import Store, StoreError, read_store

SIGMA_EXTENT = 3.0  # a Gaussian's footprint reaches 3 standard deviations, as in gsplat's radius


# ----------------------------------------------------------------------------------------------
# Gaussians grouped into instances, and cameras
# ----------------------------------------------------------------------------------------------
@dataclass
class InstanceGaussians:
    """Activated Gaussians (unit quats, positive scales, opacities in (0,1)) with features and leaf (instance) ids."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    features: Tensor
    leaf_id: Tensor
    num_instances: int

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def device(self) -> torch.device:
        return self.means.device

    def take(self, index: Tensor) -> "InstanceGaussians":
        """The Gaussians selected by a boolean mask or an index tensor."""
        per_gaussian = [f.name for f in fields(self) if f.name != "num_instances"]
        return replace(self, **{name: getattr(self, name)[index] for name in per_gaussian})

    def members(self) -> list[Tensor]:
        """Gaussian indices of every instance (one sort, then slices)."""
        order = torch.argsort(self.leaf_id, stable=True)
        valid = self.leaf_id[order] >= 0
        order = order[valid]
        counts = torch.bincount(self.leaf_id[order], minlength=self.num_instances).tolist()
        return list(torch.split(order, counts))


def load_instance_gaussians(gaussians: str | Path, codebook: str | Path,
                            device: str | torch.device = "cpu") -> tuple[InstanceGaussians, Tensor]:
    """Read a ``feature_gaussians`` and a ``codebook`` store; returns the instances and the leaf features [K,D].

    Raises ``StoreError`` naming the codebook when its Gaussian count or feature size does not match.
    """
    g_store = read_store("feature_gaussians", gaussians)
    cb = read_store("codebook", codebook)
    check_codebook(g_store, cb)
    params = {k: torch.from_numpy(g_store.load(k)).to(device) for k in PARAM_KEYS}
    a = activated(params)
    centres = torch.from_numpy(cb.load("fine_centres")).to(device)
    inst = InstanceGaussians(a["means"], a["quats"], a["scales"], a["opacities"],
                             torch.from_numpy(g_store.load("features")).to(device),
                             torch.from_numpy(cb.load("leaf_id")).long().to(device), int(centres.shape[0]))
    return inst, centres


def check_codebook(gaussians: Store, codebook: Store) -> None:
    """The codebook must label exactly the store's Gaussians with leaves of the Gaussians' feature size."""
    n, d = gaussians.sizes["N"], gaussians.sizes["D"]
    if codebook.sizes["N"] != n:
        raise StoreError(f"{codebook.path}: codebook labels {codebook.sizes['N']} Gaussians but "
                         f"{gaussians.path} holds {n}")
    if codebook.sizes["D"] != d:
        raise StoreError(f"{codebook.path}: leaf features have {codebook.sizes['D']} dims but the Gaussian "
                         f"features of {gaussians.path} have {d}")
    leaf = codebook.load("leaf_id")
    if leaf.size and (leaf.max() >= codebook.sizes["K"] or leaf.min() < -1):
        raise StoreError(f"{codebook.path}: leaf_id outside [-1, {codebook.sizes['K']})")


@dataclass
class Cameras:
    """A batch of pinhole cameras (OpenCV, world-to-camera) sharing one image size."""

    viewmats: Tensor
    Ks: Tensor
    width: int
    height: int

    def __len__(self) -> int:
        return int(self.viewmats.shape[0])

    def __getitem__(self, index: Tensor | slice | list[int]) -> "Cameras":
        return replace(self, viewmats=self.viewmats[index], Ks=self.Ks[index])

    @classmethod
    def from_scene(cls, scene: Store, views: np.ndarray, device: str | torch.device = "cpu") -> "Cameras":
        """The cameras of the given views of a ``scene`` store."""
        views = np.asarray(views, dtype=np.int64)
        return cls(torch.from_numpy(scene.load("world_to_camera")[views]).to(device),
                   torch.from_numpy(scene.load("intrinsics")[views]).to(device), scene.sizes["W"], scene.sizes["H"])


def render_channels(g: InstanceGaussians, values: Tensor, cams: Cameras) -> tuple[Tensor, Tensor]:
    """Composite per-Gaussian values [N,Q] (3DGS Eq. 3, no background): ([C,H,W,Q], alpha [C,H,W])."""
    out, alpha, _ = render(g.means, g.quats, g.scales, g.opacities, values, cams.viewmats, cams.Ks,
                           cams.width, cams.height)
    return out, alpha[..., 0]


def render_alpha(g: InstanceGaussians, cams: Cameras) -> Tensor:
    """Accumulated opacity of ``g`` rendered alone, [C,H,W]: 1 - prod_i (1 - a_i) over its Gaussians only."""
    return render_channels(g, g.means.new_zeros(len(g), 1), cams)[1]


def instance_visibility(g: InstanceGaussians, cams: Cameras, near: float = 0.01, chunk: int = 8) -> Tensor:
    """[K,C] bool: some Gaussian of instance k projects into camera c (mean in front, 3-sigma disc meets the image).

    A cheap, conservative test used to skip rendering instances a view cannot see.
    """
    seen = torch.zeros(g.num_instances, len(cams), dtype=torch.bool, device=g.device)
    valid = g.leaf_id >= 0
    leaf, means = g.leaf_id[valid], g.means[valid]
    radius = SIGMA_EXTENT * g.scales[valid].amax(-1)
    for start in range(0, len(cams), chunk):
        c = cams[start:start + chunk]
        cam = torch.einsum("cij,nj->cni", c.viewmats[:, :3, :3], means) + c.viewmats[:, None, :3, 3]
        z = cam[..., 2]
        zs = z.clamp_min(near)
        fx, fy = c.Ks[:, 0, 0, None], c.Ks[:, 1, 1, None]
        u = fx * cam[..., 0] / zs + c.Ks[:, 0, 2, None]
        v = fy * cam[..., 1] / zs + c.Ks[:, 1, 2, None]
        r = radius[None] * torch.maximum(fx, fy) / zs
        inside = (z > near) & (u + r >= 0) & (u - r < c.width) & (v + r >= 0) & (v - r < c.height)
        hits = torch.zeros(g.num_instances, len(c), device=g.device).index_add_(0, leaf, inside.T.float())
        seen[:, start:start + len(c)] = hits > 0
    return seen


# ----------------------------------------------------------------------------------------------
# Eq. 8 on label maps
# ----------------------------------------------------------------------------------------------
def mask_means_from_labels(feature_maps: Tensor, labels: Tensor, num_masks: int) -> tuple[Tensor, Tensor]:
    """P^j of Eq. 8 for label maps: mean feature inside every mask, ([C,J,D], areas [C,J]).

    ``feature_maps`` [C,H,W,D], ``labels`` [C,H,W] with mask ids 0..J-1 and -1 for no mask.
    """
    c, d = feature_maps.shape[0], feature_maps.shape[-1]
    flat, inside = _flat_mask_index(labels, num_masks)
    sums = feature_maps.new_zeros(c * num_masks, d).index_add_(0, flat, feature_maps.reshape(-1, d) * inside[:, None])
    areas = _count(flat, inside, c * num_masks).reshape(c, num_masks)
    return sums.reshape(c, num_masks, d) / areas[..., None].clamp_min(1), areas


def label_map_scores(alone: Tensor, instance_feature: Tensor, labels: Tensor, mask_means: Tensor,
                     mask_areas: Tensor) -> Tensor:
    """Eq. 8 of one instance against every mask of C views, [C,J]: S_j = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1).

    Equal to ``association.association_scores`` on dense masks (the L1 distance averaged over the D dims and clipped
    to [0,1]), computed from label maps by counting instead of materialising J dense masks per view.
    ``alone`` [C,H,W] bool is pi(M^i), the instance rendered alone and binarised.
    """
    flat, inside = _flat_mask_index(labels, mask_areas.shape[1])
    inter = _count(flat, inside & alone.reshape(-1), mask_areas.numel()).reshape(mask_areas.shape)
    union = alone.flatten(1).sum(1, keepdim=True) + mask_areas - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))
    l1 = (instance_feature - mask_means).abs().mean(-1).clamp(0, 1)
    return iou * (1 - l1)


def _flat_mask_index(labels: Tensor, num_masks: int) -> tuple[Tensor, Tensor]:
    """Per pixel: view * J + mask id (flattened), and whether the pixel lies in a mask."""
    views = torch.arange(labels.shape[0], device=labels.device).view(-1, 1, 1)
    flat = (views * num_masks + labels.long().clamp_min(0)).reshape(-1)
    return flat, (labels >= 0).reshape(-1)


def _count(flat: Tensor, where: Tensor, size: int) -> Tensor:
    """Histogram of ``flat`` over the pixels ``where`` is set (a scatter-add: no host synchronisation on a GPU)."""
    return torch.zeros(size, device=flat.device).index_add_(0, flat, where.float())


# ----------------------------------------------------------------------------------------------
# Association of every instance with at most one mask per view
# ----------------------------------------------------------------------------------------------
@dataclass
class AssociationConfig:
    """Knobs of the association and fusion (the ``associate`` stage's params)."""

    level: int = 0  # mask level (index into the masks store's levels) whose masks are associated
    alpha_threshold: float = 0.5  # binarisation of the instance rendered alone, pi(M^i)
    # A view's best mask is kept only if its Eq. 8 score exceeds this: where an instance is hidden, its footprint
    # still overlaps some unrelated mask a little, and such near-zero matches agree with each other across views.
    min_score: float = 0.05
    tau: float = 10.0  # temperature of the cross-view agreement weights; 0 = plain mean (OpenGaussian)
    score_weighted: bool = True  # also weight every view by its Eq. 8 score
    view_batch: int = 16  # cameras rendered per call


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
            scores = label_map_scores(alone, centres[k], labels[batch], mask_means[batch], mask_areas[batch])
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


def label_instances(language: Tensor, text_features: Tensor) -> Tensor:
    """Open-vocabulary label of every instance: argmax_c cos(language_k, text_c); -1 for zero (unseen) rows."""
    sim = torch.nn.functional.normalize(language.float(), dim=-1) @ torch.nn.functional.normalize(
        text_features.float(), dim=-1).T
    seen = language.float().abs().sum(-1) > 0
    return torch.where(seen, sim.argmax(-1), torch.full_like(seen, -1, dtype=torch.long))
