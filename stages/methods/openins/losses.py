"""Instance-feature losses of OpenGaussian / OpenInsGaussian on a rendered feature map and a view's masks."""

from __future__ import annotations

import torch
from torch import Tensor

from stages.lib.mask_means import mask_mean_features


def intra_mask_smoothing_loss(features: Tensor, masks: Tensor) -> Tensor:
    """L_s (Eq. 3): mean squared distance of every masked pixel's feature to its mask's mean feature."""
    means = mask_mean_features(features, masks)
    flat = features.reshape(-1, features.shape[-1])
    weights = masks.flatten(1).to(features.dtype)
    sq = ((flat[None] - means[:, None]) ** 2).sum(-1)
    return (weights * sq).sum() / weights.sum().clamp_min(1.0)


def inter_mask_contrastive_loss(features: Tensor, masks: Tensor, eps: float = 1e-6) -> Tensor:
    """L_c (Eq. 4): 1 / (m (m-1)) sum_{i != j} 1 / ||F_i - F_j||^2 over the masks' mean features."""
    means = mask_mean_features(features, masks)
    m = means.shape[0]
    if m < 2:
        return features.sum() * 0
    d2 = torch.cdist(means, means) ** 2
    off = ~torch.eye(m, dtype=torch.bool, device=features.device)
    return (1.0 / (d2[off] + eps)).sum() / (m * (m - 1))


def pseudo_gt_feature_loss(rendered: Tensor, quantised: Tensor) -> Tensor:
    """L_p (Eq. 7): |M^p - M^c|_1, the mean absolute difference to the codebook-quantised rendering."""
    return (rendered - quantised).abs().mean()
