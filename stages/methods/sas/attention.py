"""Cross-attention localisation in Stable Diffusion (SAS Sec. 3.2, Eq. 1-2): per-token attention maps aggregated
over UNet layers and diffusion steps, thresholded into a coarse mask, and point prompts for SAM sampled inside it.

Our readings where the paper is silent: maps of different UNet resolutions are resized bilinearly to the largest
one before Eq. 2; the coarse mask keeps pixels whose aggregated map is >= ``threshold`` x its maximum (0.5); SAM gets
``num_points`` positive points, the coarse mask's most attended pixels spread by farthest-point order.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


class AttentionAggregator:
    """Eq. 2 over a stream of maps M^{y,z} [h, w] of one token (UNet layer y, step z): the running mean of each map
    divided by its maximum, resized to ``size``; memory is one [size] map whatever Y x Z is."""

    def __init__(self, size: tuple[int, int]) -> None:
        self.size = tuple(size)
        self.total = torch.zeros(self.size, dtype=torch.float64)
        self.count = 0

    def add(self, m: Tensor) -> None:
        m = m.detach().double().cpu()
        if tuple(m.shape[-2:]) != self.size:
            m = F.interpolate(m[None, None], size=self.size, mode="bilinear", align_corners=False)[0, 0]
        self.total += m / m.max().clamp_min(1e-12)
        self.count += 1

    def mean(self) -> Tensor:
        if self.count == 0:
            raise ValueError("no cross-attention maps to aggregate")
        return (self.total / self.count).float()


def aggregate_attention(maps: list[Tensor], size: tuple[int, int] | None = None) -> Tensor:
    """Eq. 2: mean over the Y x Z maps M^{y,z} [h, w] of one token, each divided by its maximum, at ``size``
    (default: the largest map's size)."""
    if not maps:
        raise ValueError("no cross-attention maps to aggregate")
    if size is None:
        size = max((tuple(m.shape[-2:]) for m in maps), key=lambda s: s[0] * s[1])
    agg = AttentionAggregator(size)
    for m in maps:
        agg.add(m)
    return agg.mean()


def coarse_mask(aggregated: Tensor, threshold: float = 0.5) -> Tensor:
    """Binarised aggregated map: pixels >= threshold x max."""
    return aggregated >= threshold * aggregated.max()


def prompt_points(aggregated: Tensor, mask: Tensor, num_points: int = 3) -> np.ndarray:
    """Up to ``num_points`` (x, y) pixel centres inside ``mask``: the most attended pixel first, then the pixels
    farthest from those chosen (ties broken by attention)."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if ys.numel() == 0:
        return np.zeros((0, 2), np.float32)
    coords = torch.stack([xs, ys], -1).double() + 0.5
    weight = aggregated[ys, xs].double()
    chosen = [int(weight.argmax())]
    dist = (coords - coords[chosen[0]]).norm(dim=-1)
    while len(chosen) < min(num_points, len(coords)):
        nxt = int((dist + 1e-6 * weight).argmax())
        chosen.append(nxt)
        dist = torch.minimum(dist, (coords - coords[nxt]).norm(dim=-1))
    return coords[chosen].float().numpy()
