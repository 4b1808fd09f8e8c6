"""Per-view classifiers of Proto-SaGa (Sec. 3.1, Eq. 6-8) and the per-Gaussian probabilities of Eq. 14.

Every training view k has its own classifier w_k with one row per mask of that view's (inconsistent) mask map;
a rendered feature F(p) is classified by softmax(tau cos(w_k, F(p))). Our reading of |w_k| in Eq. 6: the norm of
each class row (a cosine classifier), since the norm of the whole matrix would not bound the logits by tau.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def cosine_logits(features: Tensor, weights: Tensor, tau: float) -> Tensor:
    """tau * w_l^T f / (|w_l| |f|) for every class row w_l: features [..., D], weights [L, D] -> [..., L] (Eq. 6, 14)."""
    return tau * F.normalize(features, dim=-1) @ F.normalize(weights, dim=-1).T


def view_cross_entropy(rendered: Tensor, target: Tensor, weights: Tensor, tau: float) -> Tensor:
    """L_CE of one view (Eq. 6-7): cross-entropy of softmax(tau cos(w_k, F_k(p))) against the mask id M_k(p).

    ``rendered`` [H,W,D], ``target`` [H,W] long with -1 where no mask covers the pixel (no term). Eq. 7 sums over
    pixels and Eq. 3 does too; both are divided by the pixel count here, so lambda_CE keeps the paper's balance.
    """
    logits = cosine_logits(rendered.reshape(-1, rendered.shape[-1]), weights, tau)
    return F.cross_entropy(logits, target.reshape(-1), ignore_index=-1, reduction="sum") / target.numel()


def gaussian_probabilities(features: Tensor, weights: Tensor, tau: float) -> Tensor:
    """sigma_{i,k} of Eq. 14: softmax over view k's classes of tau cos(w_k, f_i), features [N,D] -> [N, L_k]."""
    return torch.softmax(cosine_logits(features, weights, tau), dim=-1)


def masks_to_target(masks: Tensor) -> Tensor:
    """Per pixel the index of the (non-overlapping) mask covering it, -1 for none: masks [M,H,W] -> [H,W]."""
    if masks.shape[0] == 0:
        return torch.full(masks.shape[1:], -1, dtype=torch.long, device=masks.device)
    covered = masks.any(0)
    return torch.where(covered, masks.float().argmax(0), torch.full_like(covered, -1, dtype=torch.long))


class ViewClassifierObjective(torch.nn.Module):
    """lambda_CE * L_CE (Eq. 7-8) with one classifier w_k [L_k, D] per training view; the classifiers are parameters.

    The shared trainer calls ``prepare`` with the mask ids it will hand for every view (row t of w_k classifies the
    t-th of them) and optimises the parameters with Adam at ``lr`` (5e-4 in Sec. 4.1); the photometric term
    L_REC of Eq. 8 is the trainer's ``photometric_weight``. The classifiers start as a linear layer's default
    initialisation, U(-1/sqrt(D), 1/sqrt(D)) (our reading; the paper does not say).
    """

    def __init__(self, tau: float = 10.0, weight: float = 0.05, lr: float = 5e-4, seed: int = 0) -> None:
        super().__init__()
        self.tau, self.weight, self.lr, self.seed = tau, weight, lr, seed
        self.classifiers = torch.nn.ParameterDict()
        self.register_buffer("mask_ids", torch.zeros((0, 0), dtype=torch.int32))

    def prepare(self, view_mask_ids: Sequence[Tensor | None], feature_dim: int) -> None:
        """One classifier per view with masks, ``view_mask_ids[k]`` the label ids of view k's rows (None: not a
        training view); ``mask_ids`` [V, L_max] records them (-1 padding) for the association (Eq. 14-15)."""
        gen = torch.Generator().manual_seed(self.seed)
        bound = 1.0 / math.sqrt(feature_dim)
        width = max([len(ids) for ids in view_mask_ids if ids is not None] + [0])
        table = torch.full((len(view_mask_ids), width), -1, dtype=torch.int32)
        self.classifiers = torch.nn.ParameterDict()
        for view, ids in enumerate(view_mask_ids):
            if ids is None or len(ids) == 0:
                continue
            table[view, :len(ids)] = ids.to(torch.int32).cpu()
            w = (torch.rand((len(ids), feature_dim), generator=gen) * 2 - 1) * bound
            self.classifiers[str(view)] = torch.nn.Parameter(w)
        self.mask_ids = table

    def classifier(self, view: int) -> Tensor:
        """w_k of a view, [L_k, D]."""
        if str(view) not in self.classifiers:
            raise KeyError(f"view {view} has no classifier (no masks, or prepare() was not called)")
        return self.classifiers[str(view)]

    def forward(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        if masks.shape[0] == 0:
            zero = rendered.sum() * 0.0
            return zero, {"L_CE": zero.detach()}
        ce = view_cross_entropy(rendered, masks_to_target(masks), self.classifier(view), self.tau)
        return self.weight * ce, {"L_CE": ce.detach()}
