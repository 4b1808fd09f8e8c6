"""Prototype inference of Proto-SaGa (Sec. 3.3, Eq. 17-19), in 2D (rendered views) and 3D (per Gaussian).

Prototypes are masked averages of the rendered training feature maps over each consistent instance (Eq. 17),
averaged over the views that contain the instance (Eq. 18); a rendered pixel, or a Gaussian's own feature in the 3D
version, takes the instance of the most similar prototype (Eq. 19). tau scales the cosine only: it does not change
the argmax and is kept for the scores.
"""

from __future__ import annotations

import torch
from torch import Tensor

from stages.methods.protosaga.classifiers import cosine_logits


def view_prototypes(feature_maps: Tensor, labels: Tensor, num_instances: int) -> tuple[Tensor, Tensor]:
    """v_k(t) of Eq. 17 for C views: mean rendered feature over R'_k(t), the pixels of consistent instance t.

    ``feature_maps`` [C,H,W,D], ``labels`` [C,H,W] consistent ids (-1 none) -> (prototypes [C,K,D], present [C,K]).
    """
    c, d = feature_maps.shape[0], feature_maps.shape[-1]
    lab = labels.reshape(c, -1).long()
    inside = lab >= 0
    flat = (torch.arange(c, device=lab.device)[:, None] * num_instances + lab.clamp_min(0))[inside]
    sums = feature_maps.new_zeros(c * num_instances, d).index_add_(0, flat, feature_maps.reshape(c, -1, d)[inside])
    area = torch.bincount(flat, minlength=c * num_instances).reshape(c, num_instances)
    protos = sums.reshape(c, num_instances, d) / area[..., None].clamp_min(1)
    return protos, area > 0


class PrototypeEnsemble:
    """v(t) of Eq. 18, accumulated view by view: the mean of v_k(t) over the K views containing instance t."""

    def __init__(self, num_instances: int, dim: int, device: str | torch.device = "cpu") -> None:
        self.sums = torch.zeros((num_instances, dim), device=device)
        self.views = torch.zeros(num_instances, dtype=torch.long, device=device)

    def add(self, feature_maps: Tensor, labels: Tensor) -> None:
        """Add the Eq. 17 prototypes of C more views (feature maps [C,H,W,D], consistent labels [C,H,W])."""
        protos, present = view_prototypes(feature_maps, labels, len(self.views))
        self.sums += (protos * present[..., None]).sum(0)
        self.views += present.sum(0)

    def prototypes(self) -> tuple[Tensor, Tensor]:
        """(v(t) [K,D], zero rows for instances never seen; seen [K] bool)."""
        seen = self.views > 0
        return self.sums / self.views.clamp_min(1)[:, None], seen


def prototype_scores(features: Tensor, prototypes: Tensor, seen: Tensor, tau: float) -> Tensor:
    """tau cos(v(t), F(p)) of Eq. 19, [..., K]; instances never seen score -inf (they have no prototype)."""
    logits = cosine_logits(features, prototypes, tau)
    return logits.masked_fill(~seen, float("-inf"))


def predict_instances(features: Tensor, prototypes: Tensor, seen: Tensor, tau: float = 10.0) -> Tensor:
    """y(p) = argmax_t tau cos(v(t), F(p)) (Eq. 19) for rendered features [..., D]; on per-Gaussian features f_i
    [N,D] it is the 3D version (each Gaussian's instance). -1 where no instance has a prototype."""
    if not bool(seen.any()):
        return torch.full(features.shape[:-1], -1, dtype=torch.long, device=features.device)
    return prototype_scores(features, prototypes, seen, tau).argmax(-1)
