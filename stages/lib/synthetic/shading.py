"""Procedural textures (checker x value noise per instance colour) with Lambertian shading."""

from __future__ import annotations

import torch
from torch import Tensor

LIGHT = torch.tensor([0.4, 0.8, 0.3])


def _value_noise(p: Tensor, scale: float) -> Tensor:
    """Smooth pseudo-random field in [0,1] from summed sinusoids of the world position."""
    q = p * scale
    n = torch.sin(q[:, 0] * 1.7 + torch.sin(q[:, 2] * 2.3)) * torch.sin(q[:, 1] * 2.9 + q[:, 2] * 0.7)
    return 0.5 + 0.5 * n


def shade(hit: Tensor, normal: Tensor, instance: Tensor, palette: Tensor, ray_dir: Tensor) -> Tensor:
    """RGB in [0,1] per ray: instance colour modulated by a checker and noise texture, Lambertian + ambient."""
    base = palette[instance]
    freq = 4.0 + (instance % 3).to(hit.dtype) * 2.0
    checker = ((torch.floor(hit[:, 0] * freq) + torch.floor(hit[:, 1] * freq) + torch.floor(hit[:, 2] * freq)) % 2)
    texture = 0.75 + 0.15 * checker + 0.2 * _value_noise(hit, 3.0) - 0.1
    light = LIGHT.to(hit) / LIGHT.norm()
    n = torch.nn.functional.normalize(normal, dim=-1)
    n = torch.where(((n * ray_dir).sum(-1, keepdim=True) > 0), -n, n)  # face the camera
    lambert = (n @ light).clamp_min(0)
    return base * texture[:, None] * (0.45 + 0.55 * lambert[:, None])
