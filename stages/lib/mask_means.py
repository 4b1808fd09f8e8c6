"""Mean feature inside 2D masks, from dense boolean masks or from label maps (no dense masks materialised)."""

from __future__ import annotations

import torch
from torch import Tensor


def mask_mean_features(features: Tensor, masks: Tensor) -> Tensor:
    """Mean feature inside each mask: features [H,W,D], masks [M,H,W] bool -> [M,D]."""
    weights = masks.flatten(1).to(features.dtype)
    return weights @ features.reshape(-1, features.shape[-1]) / weights.sum(1, keepdim=True).clamp_min(1.0)


def mask_means_from_labels(feature_maps: Tensor, labels: Tensor, num_masks: int) -> tuple[Tensor, Tensor]:
    """Mean feature inside every mask of label maps, ([C,J,D], areas [C,J]).

    ``feature_maps`` [C,H,W,D], ``labels`` [C,H,W] with mask ids 0..J-1 and -1 for no mask.
    """
    c, d = feature_maps.shape[0], feature_maps.shape[-1]
    flat, inside = flat_mask_index(labels, num_masks)
    sums = feature_maps.new_zeros(c * num_masks, d).index_add_(0, flat, feature_maps.reshape(-1, d) * inside[:, None])
    areas = masked_count(flat, inside, c * num_masks).reshape(c, num_masks)
    return sums.reshape(c, num_masks, d) / areas[..., None].clamp_min(1), areas


def flat_mask_index(labels: Tensor, num_masks: int) -> tuple[Tensor, Tensor]:
    """Per pixel of label maps [C,H,W]: view * J + mask id (flattened), and whether the pixel lies in a mask."""
    views = torch.arange(labels.shape[0], device=labels.device).view(-1, 1, 1)
    flat = (views * num_masks + labels.long().clamp_min(0)).reshape(-1)
    return flat, (labels >= 0).reshape(-1)


def masked_count(flat: Tensor, where: Tensor, size: int) -> Tensor:
    """Histogram of ``flat`` over the pixels ``where`` is set (a scatter-add: no host synchronisation on a GPU)."""
    return torch.zeros(size, device=flat.device).index_add_(0, flat, where.float())
