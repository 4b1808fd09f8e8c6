"""3D-2D association of OpenInsGaussian (supplement A.4): score every 2D mask for every rendered 3D instance."""

from __future__ import annotations

import torch
from torch import Tensor

from stages.lib.instance_losses import mask_mean_features


def masks_iou(a: Tensor, b: Tensor) -> Tensor:
    """Pairwise IoU of boolean masks a [I,H,W] and b [J,H,W] -> [I,J]."""
    af, bf = a.flatten(1).float(), b.flatten(1).float()
    inter = af @ bf.T
    union = af.sum(1)[:, None] + bf.sum(1)[None] - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.zeros_like(inter))


def association_scores(instance_masks: Tensor, instance_features: Tensor, sam_masks: Tensor,
                       feature_map: Tensor) -> Tensor:
    """Eq. 8: S_ij = IoU(pi(M^i), B^j) * (1 - |M^i - P^j|_1).

    pi(M^i): instance i rendered alone and binarised [I,H,W]; M^i its (unit) instance feature [I,D];
    P^j: the rendered feature map averaged inside SAM mask B^j. The L1 distance is averaged over the
    D feature dimensions and clipped to [0,1], so the agreement term lies in [0,1].
    """
    iou = masks_iou(instance_masks, sam_masks)
    filled = mask_mean_features(feature_map, sam_masks)
    l1 = (instance_features[:, None] - filled[None]).abs().mean(-1).clamp(0, 1)
    return iou * (1 - l1)


def best_mask_per_instance(scores: Tensor, min_score: float = 0.0) -> Tensor:
    """Index of the best-scoring mask per instance in one view, -1 where none scores above ``min_score``."""
    best, idx = scores.max(dim=1)
    return torch.where(best > min_score, idx, torch.full_like(idx, -1))
