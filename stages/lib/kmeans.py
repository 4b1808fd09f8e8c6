"""K-means with k-means++ seeding in torch (runs on the GPU), and the two-level codebook of Eq. 5-6."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


def kmeans_pp_init(x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """k-means++ seeding: each next centre sampled with probability proportional to D(x)^2."""
    idx = torch.randint(len(x), (1,), generator=generator, device="cpu").to(x.device)
    centres = [x[idx]]
    d2 = ((x - centres[0]) ** 2).sum(-1)
    for _ in range(1, k):
        probs = d2 / d2.sum() if d2.sum() > 0 else torch.full_like(d2, 1 / len(d2))
        idx = torch.multinomial(probs.cpu(), 1, generator=generator).to(x.device)
        centres.append(x[idx])
        d2 = torch.minimum(d2, ((x - centres[-1]) ** 2).sum(-1))
    return torch.cat(centres)


def kmeans(x: Tensor, k: int, iters: int = 50, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Lloyd's k-means; returns (centres [k,D], assignment [N]). ``k`` is clipped to the number of points."""
    k = min(k, len(x))
    gen = torch.Generator().manual_seed(seed)
    centres = kmeans_pp_init(x, k, gen)
    assign = torch.zeros(len(x), dtype=torch.long, device=x.device)
    for it in range(iters):
        new_assign = torch.cdist(x, centres).argmin(1)
        if it > 0 and torch.equal(new_assign, assign):
            break
        assign = new_assign
        sums = torch.zeros_like(centres).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k).to(x.dtype)[:, None]
        centres = torch.where(counts > 0, sums / counts.clamp_min(1), centres)
    return centres, assign


@dataclass
class TwoLevelCodebook:
    """Eq. 5-6: coarse clusters on [w * normalised xyz, feature], fine clusters on features inside each coarse one."""

    coarse_centres: Tensor  # [K1, 3 + D] member means in the Eq. 5 space (zero for empty clusters)
    coarse: Tensor      # [N] coarse cluster id
    fine: Tensor        # [N] global fine cluster id (codebook entry)
    codebook: Tensor    # [K1*K2, D] features of the codebook entries (unused entries are zero)
    valid: Tensor       # [K1*K2] whether an entry has members

    def quantise(self) -> Tensor:
        """Per-Gaussian quantised features (the pseudo ground truth of Eq. 7)."""
        return self.codebook[self.fine]


def normalise_xyz(xyz: Tensor) -> Tensor:
    """Scale positions into the unit cube so they weigh like unit features in the coarse level."""
    lo, hi = xyz.min(0).values, xyz.max(0).values
    return (xyz - lo) / (hi - lo).max().clamp_min(1e-9)


def two_level_codebook(xyz: Tensor, features: Tensor, k1: int = 64, k2: int = 10, iters: int = 50,
                       seed: int = 0, xyz_weight: float = 1.0) -> TwoLevelCodebook:
    """Build the codebook: k1 coarse clusters on [xyz_weight * normalised xyz, f] (Eq. 5), then k2 fine clusters
    on f within each (Eq. 6)."""
    space = torch.cat([xyz_weight * normalise_xyz(xyz), features], dim=1)
    _, coarse = kmeans(space, k1, iters, seed)
    sums = torch.zeros(k1, space.shape[1], device=space.device, dtype=space.dtype).index_add_(0, coarse, space)
    coarse_centres = sums / torch.bincount(coarse, minlength=k1).clamp_min(1)[:, None].to(space.dtype)
    dim = features.shape[1]
    codebook = torch.zeros(k1 * k2, dim, device=features.device, dtype=features.dtype)
    valid = torch.zeros(k1 * k2, dtype=torch.bool, device=features.device)
    fine = torch.empty(len(features), dtype=torch.long, device=features.device)
    for c in range(k1):
        members = torch.where(coarse == c)[0]
        if len(members) == 0:
            continue
        centres, local = kmeans(features[members], k2, iters, seed + c + 1)
        fine[members] = c * k2 + local
        codebook[c * k2: c * k2 + len(centres)] = centres
        valid[c * k2: c * k2 + len(centres)] = True
    return TwoLevelCodebook(coarse_centres=coarse_centres, coarse=coarse, fine=fine, codebook=codebook, valid=valid)
