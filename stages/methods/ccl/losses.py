"""Contrastive codebook learning losses of CCL-LGS (Sec. 3.3, Eq. 4-8) on one batch of mask features.

Features F_i [M,E] are CLIP embeddings of masks, y_i their cross-view track ids (-1: unmatched), T [N,E] the
learnable prototypes. Only T receives gradients (the features are fixed 2D priors). Pair terms are averaged over
the pairs they apply to (i != k); the paper gives the per-pair terms only, so the reduction is our reading.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.functional import normalize

UNTRACKED = -1


def cosine_matrix(a: Tensor, b: Tensor) -> Tensor:
    """cos(a_i, b_j) for every pair, [A,B]."""
    return normalize(a.float(), dim=-1) @ normalize(b.float(), dim=-1).T


def nearest_prototype(features: Tensor, prototypes: Tensor) -> Tensor:
    """Eq. 4: j*_i = argmax_j cos(F_i, T_j), [M] long."""
    return cosine_matrix(features, prototypes).argmax(-1)


def matching_loss(features: Tensor, prototypes: Tensor, nearest: Tensor) -> Tensor:
    """Eq. 5: L_max = 1 - cos(F_i, T_{j*_i}), averaged over the features."""
    if len(features) == 0:
        return prototypes.sum() * 0
    cos = (normalize(features.float(), dim=-1) * normalize(prototypes[nearest], dim=-1)).sum(-1)
    return (1 - cos).mean()


def pair_masks(labels: Tensor) -> tuple[Tensor, Tensor]:
    """(same, different) [M,M] bool over pairs i != k of tracked masks: y_i = y_k, resp. y_i != y_k (Eq. 6-7
    conditions); a pair with an unmatched mask (y = -1) is in neither."""
    tracked = labels != UNTRACKED
    both = tracked[:, None] & tracked[None, :]
    equal = labels[:, None] == labels[None, :]
    same = equal & both
    same.fill_diagonal_(False)
    return same, both & ~equal


def pull_loss(prototypes: Tensor, nearest: Tensor, labels: Tensor) -> Tensor:
    """Eq. 6: L_pull = 1 - cos(T_{j_i}, T_{j_k}) over pairs with y_i = y_k != -1 (mean; 0 without such pairs)."""
    same, _ = pair_masks(labels)
    if not same.any():
        return prototypes.sum() * 0
    chosen = prototypes[nearest]
    return (1 - cosine_matrix(chosen, chosen)[same]).mean()


def push_loss(prototypes: Tensor, nearest: Tensor, labels: Tensor, margin: float) -> Tensor:
    """Eq. 7: L_push = ReLU(cos(T_{j_i}, T_{j_k}) - m) over pairs with y_i != y_k, both != -1 (mean; 0 without)."""
    _, different = pair_masks(labels)
    if not different.any():
        return prototypes.sum() * 0
    chosen = prototypes[nearest]
    return torch.relu(cosine_matrix(chosen, chosen)[different] - margin).mean()


@dataclass(frozen=True)
class CCLWeights:
    """Eq. 8 weights and the Eq. 7 margin; the paper's values (Sec. 4): lambda_pull = lambda_push = 0.25, m = 0.7."""

    lambda_pull: float = 0.25
    lambda_push: float = 0.25
    margin: float = 0.7


def ccl_loss(features: Tensor, labels: Tensor, prototypes: Tensor,
             weights: CCLWeights = CCLWeights()) -> tuple[Tensor, dict[str, Tensor]]:
    """Eq. 8: L = L_max + lambda_pull L_pull + lambda_push L_push; returns L and the detached terms."""
    nearest = nearest_prototype(features, prototypes.detach())
    l_max = matching_loss(features, prototypes, nearest)
    l_pull = pull_loss(prototypes, nearest, labels)
    l_push = push_loss(prototypes, nearest, labels, weights.margin)
    total = l_max + weights.lambda_pull * l_pull + weights.lambda_push * l_push
    return total, {"L_max": l_max.detach(), "L_pull": l_pull.detach(), "L_push": l_push.detach()}
