"""SAGA's vote-based open-vocabulary labelling (A.3) as pieces of the generic stages: the ``codebook`` algorithm
``saga_vote_graph`` (3D instances = clusters of the vote graph of the train views' masks) and the ``association``
rule ``saga_vote`` (each instance's label voted by its masks' CLIP features, Eq. 15), so the ScanNet 3D protocol of
``evaluate_semantic`` reads SAGA like any other method.

Our readings: anchors are a uniform sample of the Gaussians (``num_anchors``); the segmentation threshold tau of
A_M is also the one that assigns every Gaussian to its cluster (``stages.methods.saga.vote.gaussian_targets``);
the instance language feature is the mean of its masks' unit CLIP features, whose cosine with a text feature ranks
the vocabulary exactly as r_T of Eq. 15 does with r_M = cos.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.cli import StageCall, config_from_params
from stages.lib.clustering import HDBSCANConfig
from stages.lib.mask_store import load_masks
from stages.lib.rendered_depth import Camera
from stages.lib.scene import load_scene
from stages.lib.store import StoreError, read_store, write_store
from stages.methods import register
from stages.methods.saga.field import SagaField
from stages.methods.saga.vote import (
    anchor_segments,
    cluster_relevancy,
    gaussian_targets,
    mask_query_features,
    vote_graph,
)

log = logging.getLogger(__name__)


@dataclass
class VoteGraphConfig:
    """Anchor count, segmentation threshold tau, HDBSCAN's minimum cluster size (in masks), sampling seed."""

    num_anchors: int = 10_000
    tau: float = 0.75
    min_cluster_size: int = 5
    seed: int = 0


@torch.no_grad()
def train_mask_features(saga: SagaField, call_scene: str, masks_path: str, scales_path: str
                        ) -> tuple[np.ndarray, torch.Tensor, torch.Tensor]:
    """Rows of the train views' masks with a scale, their Eq. 14 features f_M [m,D] and gates S(s_M) [m,D]."""
    scene = load_scene(call_scene)
    masks = load_masks(masks_path, (scene.num_views, scene.height, scene.width))
    if masks.pixels is None:
        raise StoreError(f"{masks_path}: SAGA's vote graph needs every mask in full (a keep_all masks variant)")
    scales = read_store("mask_scales", scales_path).load("mask_scale")
    if len(scales) != masks.num_masks:
        raise StoreError(f"{scales_path}: {len(scales)} scales for the {masks.num_masks} masks of {masks_path}")
    rows, feats, gates = [], [], []
    for view in tqdm(np.nonzero(~scene.is_test)[0], desc="mask features", unit="view", mininterval=5):
        sel = np.nonzero((masks.table["mask_view"] == view) & np.isfinite(scales))[0]
        if not len(sel):
            continue
        cam = Camera(scene.world_to_camera[view], scene.intrinsics[view], scene.width, scene.height)
        g = saga.gate(torch.from_numpy(scales[sel]).to(saga.means.device))
        pixels = torch.from_numpy(masks.pixels[sel]).to(saga.means.device)
        rows.append(sel)
        feats.append(mask_query_features(saga.feature_map(cam), pixels, g))
        gates.append(g)
    if not rows:
        raise StoreError(f"{masks_path}: no train-view mask has a 3D scale")
    return np.concatenate(rows), torch.cat(feats), torch.cat(gates)


@register("codebook", "saga_vote_graph")
def run_vote_graph(call: StageCall) -> None:
    """A.3 vote graph: masks -> anchor segmentations -> HDBSCAN on 1 - IoU -> instances; writes a flat codebook."""
    cfg = config_from_params(VoteGraphConfig, call.options, "saga_vote_graph codebook")
    gaussians, masks_path, scales_path, scene = call.require("gaussians", "masks", "mask_scales", "scene")
    saga = SagaField.load(gaussians, call.device)
    rows, f_m, gates = train_mask_features(saga, scene, masks_path, scales_path)
    rng = np.random.default_rng(cfg.seed)
    anchors = torch.from_numpy(np.sort(rng.choice(len(saga), size=min(cfg.num_anchors, len(saga)), replace=False)))
    segments = anchor_segments(saga.features[anchors.to(saga.means.device)], f_m, gates, cfg.tau)
    clusters = vote_graph(segments, HDBSCANConfig(min_cluster_size=cfg.min_cluster_size, seed=cfg.seed))
    leaf = gaussian_targets(saga.features, f_m, gates, clusters, cfg.tau)
    k = max(int(clusters.max()) + 1, 1)
    lab = torch.from_numpy(clusters).to(f_m.device)
    keep = lab >= 0
    centres = torch.zeros(k, f_m.shape[1], device=f_m.device).index_add_(
        0, lab[keep], torch.nn.functional.normalize(f_m[keep], dim=-1))
    centres = torch.nn.functional.normalize(centres, dim=-1)
    mask_cluster = np.full(len(read_store("mask_scales", scales_path).load("mask_scale")), -1, np.int32)
    mask_cluster[rows] = clusters
    log.info("vote graph: %d masks in %d clusters (%d noise); %d of %d Gaussians assigned", len(rows), k,
             int((clusters < 0).sum()), int((leaf >= 0).sum()), len(leaf))
    with write_store("codebook", call.out, "codebook", call.params, call.inputs) as w:
        w.write("coarse_centres", centres.float().cpu().numpy())
        w.write("fine_centres", centres.float().cpu().numpy())
        w.write("coarse_id", leaf.int().cpu().numpy())
        w.write("leaf_id", leaf.int().cpu().numpy())
        w.write("mask_cluster", mask_cluster)
        w.attrs.update(k_coarse=k, k_fine=1, algorithm="saga_vote_graph", tau=cfg.tau, num_anchors=len(anchors),
                       num_masks_clustered=int(len(rows)), num_noise_masks=int((clusters < 0).sum()))


@register("association", "saga_vote")
def run_vote_association(call: StageCall) -> None:
    """Eq. 15: every vote-graph instance's relevancy = mean of its masks' relevancies; writes the association."""
    codebook_path, features_path, masks_path = call.require("codebook", "features", "masks")
    codebook, features = read_store("codebook", codebook_path), read_store("features", features_path)
    if "mask_cluster" not in codebook:
        raise StoreError(f"{codebook_path}: no mask_cluster; the saga_vote rule needs the saga_vote_graph codebook")
    clusters = codebook.load("mask_cluster")
    mask_features = torch.nn.functional.normalize(torch.from_numpy(features.load("mask_features")).float(), dim=-1)
    if len(mask_features) != len(clusters):
        raise StoreError(f"{features_path}: {len(mask_features)} mask features for the {len(clusters)} masks of "
                         f"{codebook_path}")
    text = torch.nn.functional.normalize(torch.from_numpy(features.load("text_features")).float(), dim=-1)
    k = int(codebook.sizes["K"])
    language = cluster_relevancy(clusters, mask_features, k)   # mean unit CLIP feature per instance
    relevancy = cluster_relevancy(clusters, mask_features @ text.T, k)
    seen = torch.bincount(torch.from_numpy(clusters[clusters >= 0]).long(), minlength=k) > 0
    label = torch.where(seen, relevancy.argmax(1), torch.full((k,), -1, dtype=torch.long))
    views = read_store("masks", masks_path).load("mask_view")
    num_views = np.array([len(np.unique(views[clusters == c])) for c in range(k)], np.int32)
    with write_store("association", call.out, "associate", call.params, call.inputs) as w:
        w.write("instance_language", torch.nn.functional.normalize(language, dim=-1).numpy().astype(np.float16))
        w.write("instance_views", num_views)
        w.write("instance_label", label.numpy().astype(np.int32))
        w.write("text_features", features.load("text_features"))
        w.attrs.update(vocabulary=list(features.attrs["vocabulary"]), rule="saga_vote")
