"""OpenInsGaussian's two-level instance codebook (Eq. 5-6), registered as the ``codebook`` algorithm ``openins_two_level``.

Eq. 5 clusters the Gaussians of a ``feature_gaussians`` store into ``k_coarse`` groups on
[xyz_weight * normalised xyz, feature]; Eq. 6 splits every coarse group into at most ``k_fine`` leaves on the
feature alone. A Gaussian's leaf is its 3D instance. Parameters: ``k_coarse`` (64), ``k_fine`` (10), ``xyz_weight``
(1.0; the OpenGaussian reference uses 1.0 on ScanNet and 0.5 on most LERF scenes), ``iters`` (50 Lloyd iterations),
``seed`` (0), ``min_opacity`` (0.0: Gaussians below this opacity are left unassigned, -1), ``smooth_k`` (0: off),
``smooth_gate`` (-1.0: off), ``smooth_weak_quantile`` (0.0: no Gaussian counts as weak) and ``smooth_plane_tol``
(0.0: off).

``smooth_k`` > 0 is our addition, not the paper's: before Eq. 5 every feature becomes the blending-weight-weighted
mean of its ``smooth_k`` nearest Gaussians' features, the weight of a Gaussian being its summed compositing weight
over the train views (``ViewCameras.blending_weights``). In the ScanNet setting (fixed points, no pruning) a
Gaussian that the views barely render gets almost no feature gradient of its own and keeps a feature that does
not separate its instance (measured: separability 0.37 in the least-rendered quarter against 0.79 in the most,
on a CPU hard room); its well-rendered neighbours on the same surface carry the instance instead. The paper is
silent on such Gaussians. A refinement of it (ours too), ``smooth_gate``: neighbour j enters i's mean only where
cos(f_i, f_j) >= smooth_gate (i itself always), so a picture's Gaussians do not average in the wall just behind them;
but a weak Gaussian's own feature is no guide, so the Gaussians whose blending weight is below the
``smooth_weak_quantile`` of all average over every neighbour, ungated. (smooth_gate 1 with smooth_weak_quantile q:
only the weak Gaussians are smoothed, the others keep their own feature.) A geometric refinement (ours),
``smooth_plane_tol`` t > 0: neighbour j enters i's mean only where its centre lies within t (scene units; metres on
scans) of i's local tangent plane (``coplanar_neighbours``: the plane through x_i normal to the least-variance
direction of its neighbours' centres), for every Gaussian, weak ones included: the wall behind a picture 2-8 cm in
front of it, and the picture before the wall, stay out of each other's means while both surfaces keep smoothing
along themselves.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from stages.lib.cli import StageCall, config_from_params
from stages.lib.feature_field import ViewCameras, load_feature_gaussians
from stages.lib.kmeans import kmeans
from stages.lib.neighbours import coplanar_neighbours, knn_indices, similar_neighbours, weighted_neighbour_mean
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import write_store
from stages.methods import register

log = logging.getLogger(__name__)


@dataclass
class TwoLevelCodebook:
    """Eq. 5-6: coarse clusters on [w * normalised xyz, feature], fine clusters on features inside each coarse one."""

    coarse_centres: Tensor  # [K1, 3 + D] member means in the Eq. 5 space (zero for empty clusters)
    coarse: Tensor      # [N] coarse cluster id
    fine: Tensor        # [N] global fine cluster id (codebook entry)
    codebook: Tensor    # [K1*K2, D] features of the codebook entries (unused entries are zero)
    valid: Tensor       # [K1*K2] whether an entry has members

    def quantise(self) -> Tensor:
        """Per-Gaussian quantised features (the pseudo ground truth of Eq. 7)."""
        return self.codebook[self.fine]


def normalise_xyz(xyz: Tensor) -> Tensor:
    """Scale positions into the unit cube so they weigh like unit features in the coarse level."""
    lo, hi = xyz.min(0).values, xyz.max(0).values
    return (xyz - lo) / (hi - lo).max().clamp_min(1e-9)


def two_level_codebook(xyz: Tensor, features: Tensor, k1: int = 64, k2: int = 10, iters: int = 50,
                       seed: int = 0, xyz_weight: float = 1.0) -> TwoLevelCodebook:
    """Build the codebook: k1 coarse clusters on [xyz_weight * normalised xyz, f] (Eq. 5), then k2 fine clusters
    on f within each (Eq. 6)."""
    space = torch.cat([xyz_weight * normalise_xyz(xyz), features], dim=1)
    _, coarse = kmeans(space, k1, iters, seed)
    sums = torch.zeros(k1, space.shape[1], device=space.device, dtype=space.dtype).index_add_(0, coarse, space)
    coarse_centres = sums / torch.bincount(coarse, minlength=k1).clamp_min(1)[:, None].to(space.dtype)
    dim = features.shape[1]
    codebook = torch.zeros(k1 * k2, dim, device=features.device, dtype=features.dtype)
    valid = torch.zeros(k1 * k2, dtype=torch.bool, device=features.device)
    fine = torch.empty(len(features), dtype=torch.long, device=features.device)
    for c in range(k1):
        members = torch.where(coarse == c)[0]
        if len(members) == 0:
            continue
        centres, local = kmeans(features[members], k2, iters, seed + c + 1)
        fine[members] = c * k2 + local
        codebook[c * k2: c * k2 + len(centres)] = centres
        valid[c * k2: c * k2 + len(centres)] = True
    return TwoLevelCodebook(coarse_centres=coarse_centres, coarse=coarse, fine=fine, codebook=codebook, valid=valid)


@dataclass
class CodebookConfig:
    """The algorithm's parameters (see the module docstring)."""

    k_coarse: int = 64
    k_fine: int = 10
    xyz_weight: float = 1.0
    iters: int = 50
    seed: int = 0
    min_opacity: float = 0.0
    smooth_k: int = 0
    smooth_gate: float = -1.0
    smooth_weak_quantile: float = 0.0
    smooth_plane_tol: float = 0.0

    def __post_init__(self) -> None:
        if self.k_coarse < 1 or self.k_fine < 1 or self.xyz_weight <= 0 or self.smooth_k < 0:
            raise ValueError(f"k_coarse and k_fine must be >= 1, xyz_weight > 0 and smooth_k >= 0: {self}")
        if not -1.0 <= self.smooth_gate <= 1.0 or not 0.0 <= self.smooth_weak_quantile <= 1.0:
            raise ValueError(f"smooth_gate must lie in [-1, 1] and smooth_weak_quantile in [0, 1]: {self}")
        if self.smooth_plane_tol < 0:
            raise ValueError(f"smooth_plane_tol must be >= 0 (0: off): {self}")


@dataclass
class CodebookResult:
    """Store-ready codebook: coarse centres in the Eq. 5 space, leaf centres in feature space, ids per Gaussian."""

    coarse_centres: Tensor  # [k_coarse, 3 + D]
    fine_centres: Tensor    # [k_coarse * k_fine, D], zero rows for unused leaves
    coarse_id: Tensor       # [N], -1 unassigned
    leaf_id: Tensor         # [N], -1 unassigned


def build_codebook(xyz: Tensor, features: Tensor, keep: Tensor, cfg: CodebookConfig) -> CodebookResult:
    """Run Eq. 5-6 on the kept Gaussians; the others get id -1."""
    cb = two_level_codebook(xyz[keep], features[keep], cfg.k_coarse, cfg.k_fine, cfg.iters, cfg.seed, cfg.xyz_weight)
    n = len(xyz)
    coarse_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    leaf_id = torch.full((n,), -1, dtype=torch.long, device=xyz.device)
    coarse_id[keep], leaf_id[keep] = cb.coarse, cb.fine
    return CodebookResult(coarse_centres=cb.coarse_centres, fine_centres=cb.codebook, coarse_id=coarse_id,
                          leaf_id=leaf_id)


def smoothing_neighbours(features: Tensor, means: Tensor, weights: Tensor,
                         cfg: CodebookConfig) -> tuple[Tensor, Tensor | None]:
    """The ``smooth_k`` nearest Gaussians of every Gaussian [N,k] and which of them enter its mean [N,k] (None: all):
    those admitted by ``smooth_gate`` (all where its own blending weight is below the ``smooth_weak_quantile``) and,
    with ``smooth_plane_tol``, near its tangent plane."""
    neighbours = knn_indices(means, cfg.smooth_k)
    admit = None
    if cfg.smooth_gate > -1.0:
        weak = weights < torch.quantile(weights.float(), cfg.smooth_weak_quantile).to(weights.dtype)
        admit = similar_neighbours(features, neighbours, cfg.smooth_gate) | weak[:, None]
    if cfg.smooth_plane_tol > 0:
        coplanar = coplanar_neighbours(means, neighbours, cfg.smooth_plane_tol)
        admit = coplanar if admit is None else admit & coplanar
    return neighbours, admit


def smooth_features(features: Tensor, means: Tensor, weights: Tensor, cfg: CodebookConfig) -> Tensor:
    """The ``smooth_k`` input of Eq. 5 from per-Gaussian blending weights [N]: each feature replaced by the
    weight-weighted mean of its admitted neighbours' features (``smoothing_neighbours``)."""
    neighbours, admit = smoothing_neighbours(features, means, weights, cfg)
    return weighted_neighbour_mean(features, neighbours, weights, admit)


def smooth_weak_features(params: dict[str, Tensor], scene: SceneData, cfg: CodebookConfig) -> Tensor:
    """``smooth_features`` with the summed blending weight of every Gaussian over the scene's train views."""
    train = [int(v) for v in (~scene.is_test).nonzero()[0]]
    with torch.enable_grad():
        weights = ViewCameras(scene, params["means"].device).blending_weights(params, train)
    log.info("smoothing features over %d neighbours; median blending weight %.3g, %d Gaussians never rendered",
             cfg.smooth_k, float(weights.median()), int((weights <= 0).sum()))
    return smooth_features(params["features"].detach(), params["means"].detach(), weights, cfg)


@register("codebook", "openins_two_level")
def run_two_level_codebook(call: StageCall) -> None:
    """The codebook stage with Eq. 5-6 on the ``gaussians`` input (a ``feature_gaussians`` store)."""
    cfg = config_from_params(CodebookConfig, call.options, "openins_two_level codebook")
    (gaussians,) = call.require("gaussians")
    params, _ = load_feature_gaussians(gaussians, call.device)
    keep = torch.sigmoid(params["opacities"]) >= cfg.min_opacity
    if not keep.any():
        raise ValueError(f"no Gaussian of {gaussians} has opacity >= min_opacity={cfg.min_opacity}")
    features = params["features"]
    if cfg.smooth_k > 0:
        (scene_path,) = call.require("scene")
        features = smooth_weak_features(params, load_scene(scene_path), cfg)
    result = build_codebook(params["means"], features, keep, cfg)
    used = int(torch.unique(result.leaf_id[keep]).numel())
    log.info("%d of %d Gaussians assigned to %d leaves", int(keep.sum()), len(keep), used)
    with write_store("codebook", call.out, "codebook", call.params, call.inputs) as w:
        w.write("coarse_centres", result.coarse_centres.float().cpu().numpy())
        w.write("fine_centres", result.fine_centres.float().cpu().numpy())
        w.write("coarse_id", result.coarse_id.int().cpu().numpy())
        w.write("leaf_id", result.leaf_id.int().cpu().numpy())
        w.attrs.update(k_coarse=cfg.k_coarse, k_fine=cfg.k_fine, xyz_weight=cfg.xyz_weight,
                       min_opacity=cfg.min_opacity, smooth_k=cfg.smooth_k, smooth_gate=cfg.smooth_gate,
                       smooth_weak_quantile=cfg.smooth_weak_quantile, smooth_plane_tol=cfg.smooth_plane_tol,
                       num_assigned=int(keep.sum()), num_leaves_used=used)
