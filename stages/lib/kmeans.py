"""K-means with k-means++ seeding in torch (runs on the GPU)."""

from __future__ import annotations

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
