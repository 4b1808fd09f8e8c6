"""Text queries of a CCL-LGS semantic field (Sec. 3.4, Eq. 10; supplement D for 3D queries).

A pixel's (or a Gaussian's) decoded distribution over the level's prototypes picks its prototype,
F~(v) = T_{argmax M^(v)}, and the relevance of a text tau is Eq. 10, a softmax of cosines over tau and a set of
canonical phrases. Since F~(v) is one of N prototypes, Eq. 10 is evaluated once per prototype and gathered.

Our reading where the paper is silent: the canonical phrases are LangSplat's "object", "things", "stuff",
"texture" (LERF's negatives), with tau itself in the softmax; the level of a query is the one whose relevance map
peaks highest (LangSplat's level selection, which CCL-LGS inherits); the 2D mask thresholds the relevance map
after min-max normalisation per view (LangSplat's evaluation, threshold 0.4). Class labels (3D-OVS protocol, 3D
ScanNet protocol) are argmax_c max_l cos(T_l[j_l], phi(c)) over the class list.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from stages.methods.ccl.field import FIELD_DIM, level_slice
from stages.methods.ccl.losses import cosine_matrix

CANONICAL_NEGATIVES = ("object", "things", "stuff", "texture")


def prototype_relevance(prototypes: Tensor, text: Tensor, negatives: Tensor, temperature: float = 1.0) -> Tensor:
    """Eq. 10 per prototype: p(tau | T_j) = exp(cos(T_j, phi(tau))) / sum_{s in {tau} u negatives} exp(cos(T_j,
    phi(s))), [N]; ``temperature`` divides the cosines (1 in the paper)."""
    sims = cosine_matrix(prototypes, torch.cat([text[None].to(negatives), negatives]).to(prototypes.device))
    return torch.softmax(sims / temperature, dim=-1)[:, 0]


def decode_prototypes(features: Tensor, decoders: Sequence[nn.Module], field_dim: int = FIELD_DIM) -> Tensor:
    """argmax of each level's decoded distribution for features [..., L*d_f]: prototype indices [L, ...]."""
    return torch.stack([dec(level_slice(features, l, field_dim)).argmax(-1) for l, dec in enumerate(decoders)])


def gather_relevance(prototype_index: Tensor, relevance: Tensor) -> Tensor:
    """Per level, the relevance of each position's prototype: index [L, ...], relevance [L,N] -> [L, ...]."""
    flat = prototype_index.reshape(len(relevance), -1)
    return torch.gather(relevance, 1, flat).reshape(prototype_index.shape)


def choose_level(relevance: Tensor) -> int:
    """The level whose relevance map [L, ...] peaks highest (first on ties)."""
    return int(relevance.reshape(len(relevance), -1).amax(-1).argmax())


def normalise_map(relevance: Tensor) -> Tensor:
    """Min-max normalisation of one relevance map to [0, 1] (a constant map becomes 0)."""
    lo, hi = relevance.min(), relevance.max()
    return (relevance - lo) / (hi - lo).clamp_min(1e-12)


def class_labels(prototype_index: Tensor, prototypes: Tensor, text: Tensor) -> Tensor:
    """argmax_c max_l cos(T_l[j_l], phi(c)): index [L, ...], prototypes [L,N,E], class texts [C,E] -> [...] long."""
    per_level = torch.stack([cosine_matrix(prototypes[l], text) for l in range(len(prototypes))])  # [L,N,C]
    flat = prototype_index.reshape(len(prototypes), -1)
    sims = torch.stack([per_level[l][flat[l]] for l in range(len(prototypes))]).amax(0)  # [P,C]
    return sims.argmax(-1).reshape(prototype_index.shape[1:])
