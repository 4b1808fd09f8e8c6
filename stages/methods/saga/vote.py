"""Vote-based open-vocabulary segmentation (SAGA A.3): masks clustered into a vote graph by the 3D IoU of their
segmentations of anchor Gaussians; the masks of a cluster vote for its label with their CLIP relevancies (Eq. 15).

Our readings where A.3 is silent: the mask distance for HDBSCAN is 1 - IoU (A.3 calls the IoU itself the
distance); relevancy r_M is the cosine between the mask's CLIP feature and the text feature (LERF's canonical-phrase
relevancy needs phrases the benchmark does not define); the 3D target of a cluster is the set of Gaussians that
at least half of its masks segment, and a Gaussian in several targets belongs to the one with the highest vote
fraction (ties: the smaller cluster id).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from stages.lib.clustering import HDBSCANConfig, cluster_precomputed
from stages.methods.saga.gate import gated_cosine

TARGET_VOTE_FRACTION = 0.5


def mask_query_features(feature_map: Tensor, masks: Tensor, gates: Tensor) -> Tensor:
    """Eq. 14: f_M = mean over the mask's pixels of F^{s_M}(p) = S(s_M) * F(p); map [H,W,D], masks [m,H,W],
    gates [m,D] -> [m,D]."""
    w = masks.flatten(1).float()
    mean = w @ feature_map.reshape(-1, feature_map.shape[-1]).float() / w.sum(1, keepdim=True).clamp_min(1.0)
    return gates * mean


def anchor_segments(anchor_features: Tensor, mask_features: Tensor, gates: Tensor, tau: float) -> Tensor:
    """A_M = {g in anchors : cos(S(s_M) * f_g, f_M) > tau} for every mask -> [m,A] bool."""
    return gated_cosine(anchor_features, gates, mask_features).T > tau


def vote_distance(segments: Tensor) -> Tensor:
    """1 - IoU of the masks' 3D segmentations [m,A] -> [m,m] (two empty segmentations: distance 1)."""
    s = segments.float()
    inter = s @ s.T
    sizes = s.sum(1)
    union = sizes[:, None] + sizes[None, :] - inter
    iou = torch.where(union > 0, inter / union.clamp_min(1.0), torch.zeros_like(inter))
    return 1.0 - iou


def vote_graph(segments: Tensor, cfg: HDBSCANConfig) -> np.ndarray:
    """Cluster id [m] of every mask (-1 noise) by HDBSCAN on the 1 - IoU distance of its 3D segmentation."""
    d = vote_distance(segments).double().cpu().numpy()
    np.fill_diagonal(d, 0.0)
    return cluster_precomputed(d, cfg)


def cluster_relevancy(mask_cluster: np.ndarray, mask_relevancy: Tensor, num_clusters: int) -> Tensor:
    """Eq. 15: r_T = mean relevancy of the masks in cluster T; [m], [m,C] -> [K,C] (zero rows for empty clusters)."""
    lab = torch.as_tensor(mask_cluster, device=mask_relevancy.device)
    keep = lab >= 0
    sums = mask_relevancy.new_zeros(num_clusters, mask_relevancy.shape[1]).index_add_(0, lab[keep],
                                                                                      mask_relevancy[keep])
    counts = torch.bincount(lab[keep], minlength=num_clusters).clamp_min(1)
    return sums / counts[:, None].to(sums.dtype)


def gaussian_targets(features: Tensor, mask_features: Tensor, gates: Tensor, mask_cluster: np.ndarray,
                     tau: float, batch: int = 256) -> Tensor:
    """The cluster [N] of every Gaussian: the one whose masks most often segment it (fraction >= 0.5), else -1."""
    lab = torch.as_tensor(mask_cluster, device=features.device)
    keep = torch.nonzero(lab >= 0).squeeze(1)
    num_clusters = int(lab.max()) + 1 if len(keep) else 0
    if num_clusters == 0:
        return torch.full((len(features),), -1, dtype=torch.long, device=features.device)
    votes = features.new_zeros(len(features), num_clusters)
    for start in range(0, len(keep), batch):
        b = keep[start:start + batch]
        selected = (gated_cosine(features, gates[b], mask_features[b]) > tau).float()   # [N,b]
        onehot = torch.nn.functional.one_hot(lab[b], num_clusters).float()              # [b,K]
        votes += selected @ onehot
    fraction = votes / torch.bincount(lab[keep], minlength=num_clusters).clamp_min(1).float()
    best, target = fraction.max(1)
    return torch.where(best >= TARGET_VOTE_FRACTION, target, torch.full_like(target, -1))
