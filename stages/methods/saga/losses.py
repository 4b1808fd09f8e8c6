"""Scale-aware contrastive learning (SAGA Sec. 3.4 and A.1): identity vectors, correspondences, the loss.

Shapes: P sampled pixels, M masks of the view, S sampled scales, D feature channels.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

POS_HARD_BELOW = 0.75   # A.1: consistent positive pairs with feature correspondence below this are added
NEG_HARD_ABOVE = 0.5    # A.1: consistent negative pairs with feature correspondence above this are added
WEIGHT_RANGE = (1.0, 10.0)  # A.1: pair weights are min-max normalised to this range


def identity_vectors(member: Tensor, mask_scales: Tensor, scales: Tensor) -> Tensor:
    """Eq. 6: V(s, p) [S,P,M] bool from pixel-in-mask membership [P,M] and mask scales [M] at scales [S].

    Entry i is M_i(p) when s_i < s; a mask with s_i >= s counts only if no mask with s <= s_j < s_i covers p,
    i.e. only the smallest covering mask at or above s. (The entry order is irrelevant for Eq. 7.)
    """
    large = mask_scales[None, :] >= scales[:, None]                     # [S,M]
    member_large = member[None] & large[:, None, :]                     # [S,P,M]
    inf = torch.full((), float("inf"), device=mask_scales.device)
    smallest = torch.where(member_large, mask_scales, inf).amin(-1, keepdim=True)  # [S,P,1]
    return (member[None] & ~large[:, None, :]) | (member_large & (mask_scales <= smallest))


def mask_correspondence(vectors: Tensor) -> Tensor:
    """Eq. 7: Corr_m(s, p1, p2) = 1(V(s, p1) . V(s, p2) > 0) -> [S,P,P] bool (shares a mask at scale s)."""
    v = vectors.float()
    return (v @ v.transpose(-1, -2)) > 0


def feature_correspondence(pixel_features: Tensor, gates: Tensor) -> Tensor:
    """Eq. 8: cosine of the scale-gated rendered features F^s(p) = S(s) * F(p) (Eq. 5); [P,D], [S,D] -> [S,P,P]."""
    f = torch.nn.functional.normalize(gates[:, None, :] * pixel_features[None], dim=-1)
    return f @ f.transpose(-1, -2)


def correspondence_loss(corr_m: Tensor, corr_f: Tensor) -> Tensor:
    """Eq. 9: (1 - 2 Corr_m) * max(Corr_f, 0), per (scale, pair)."""
    return (1.0 - 2.0 * corr_m.float()) * corr_f.clamp_min(0.0)


def norm_loss(rendered: Tensor) -> Tensor:
    """Eq. 11: L_norm(p) = 1 - ||F(p)||_2 per pixel of a rendering of unit-norm features (Eq. 10)."""
    return 1.0 - torch.linalg.vector_norm(rendered, dim=-1)


def mean_mask_size(member: Tensor, areas: Tensor) -> Tensor:
    """A.1: m_p, the mean pixel count of the masks covering p; [P,M], [M] -> [P] (NaN for uncovered pixels)."""
    m = member.float()
    return (m @ areas.float()) / m.sum(-1)


def pair_weights(mean_size: Tensor) -> Tensor:
    """A.1: w(p1, p2) = 1 / (m_p1 m_p2), min-max normalised over all pairs to [1, 10] (all 1 if constant)."""
    w = 1.0 / (mean_size[:, None] * mean_size[None, :])
    lo, hi = w.min(), w.max()
    if not bool(hi > lo):
        return torch.full_like(w, WEIGHT_RANGE[0])
    return WEIGHT_RANGE[0] + (WEIGHT_RANGE[1] - WEIGHT_RANGE[0]) * (w - lo) / (hi - lo)


@dataclass
class PairSelection:
    """A.1 resampling, per (scale, pair) [S,P,P] bool: Q_in + phi(Q_pos) (+ hard), Q_in + phi(Q_neg) (+ hard)."""

    positive: Tensor
    negative: Tensor


def resample_pairs(corr_m: Tensor, corr_f: Tensor, generator: torch.Generator | None = None) -> PairSelection:
    """A.1: split pairs (p1 != p2) into inconsistent / consistent positive / consistent negative over the scales,
    keep all inconsistent ones and floor(|Q_in| / 2) random ones of each consistent set, plus the hard pairs
    (consistent positives with Corr_f < 0.75, consistent negatives with Corr_f > 0.5) at the scales where hard."""
    s, p, _ = corr_m.shape
    off = ~torch.eye(p, dtype=torch.bool, device=corr_m.device)
    pos = corr_m.all(0) & off
    neg = (~corr_m).all(0) & off
    inconsistent = off & ~pos & ~neg
    k = int(inconsistent.sum()) // 2
    picked_pos = _random_subset(pos, k, generator)
    picked_neg = _random_subset(neg, k, generator)
    base_pos = (inconsistent | picked_pos)[None].expand(s, p, p)
    base_neg = (inconsistent | picked_neg)[None].expand(s, p, p)
    return PairSelection(positive=base_pos | (pos[None] & (corr_f.detach() < POS_HARD_BELOW)),
                         negative=base_neg | (neg[None] & (corr_f.detach() > NEG_HARD_ABOVE)))


def _random_subset(candidates: Tensor, k: int, generator: torch.Generator | None) -> Tensor:
    """``k`` uniformly chosen True entries of ``candidates`` (all of them when fewer): the k largest of i.i.d.
    uniform scores drawn on the candidates' device (``generator`` must live there), so no index list leaves it."""
    if k <= 0:
        return torch.zeros_like(candidates)
    scores = torch.rand(candidates.shape, generator=generator, device=candidates.device)
    scores = torch.where(candidates, scores, torch.full_like(scores, -1.0)).reshape(-1)
    top = torch.topk(scores, min(k, scores.numel())).indices
    out = torch.zeros(candidates.numel(), dtype=torch.bool, device=candidates.device)
    out[top] = True
    return (out & candidates.reshape(-1)).reshape(candidates.shape)


def saga_loss(pair_loss: Tensor, weights: Tensor, selection: PairSelection, pixel_norm_loss: Tensor) -> Tensor:
    """Eq. 13: weighted mean of L_corr over Q_in + phi(Q_pos), the same over Q_in + phi(Q_neg), plus mean L_norm.

    ``pair_loss`` [S,P,P] (Eq. 9), ``weights`` [P,P] (A.1), ``pixel_norm_loss`` [H,W] or [n] (Eq. 11, over the image).
    Each selected (scale, pair) counts once; an empty set contributes 0.
    """
    weighted = pair_loss * weights[None]
    terms = [(weighted * sel).sum() / sel.sum().clamp_min(1) for sel in (selection.positive, selection.negative)]
    return terms[0] + terms[1] + pixel_norm_loss.mean()
