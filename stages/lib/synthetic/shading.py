"""Surface appearance: per-instance colours, procedural textures (planks, checker, stripes, value noise), Lambert."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

LIGHT_DIR = (0.4, 0.8, 0.3)  # towards the light (world, y up)
AMBIENT = 0.45
FLOOR, CEILING = 0, 1  # instance ids of the room surfaces that get their own texture


def instance_colours(num_instances: int, num_room_surfaces: int, rng: np.random.Generator) -> np.ndarray:
    """RGB in [0,1] per instance: a wooden floor, pale ceiling and walls, saturated furniture."""
    colours = rng.uniform(0.15, 0.9, (num_instances, 3))
    colours[FLOOR] = rng.uniform([0.5, 0.33, 0.18], [0.65, 0.45, 0.28])
    colours[CEILING] = rng.uniform(0.85, 0.95) * np.ones(3)
    colours[CEILING + 1:num_room_surfaces] = rng.uniform(0.6, 0.9, (num_room_surfaces - CEILING - 1, 3))
    return colours


def lattice_hash(cell: Tensor) -> Tensor:
    """Pseudo-random value in [0, 1] per integer lattice point (N,3) int64."""
    h = (cell[:, 0] * 73856093) ^ (cell[:, 1] * 19349663) ^ (cell[:, 2] * 83492791)
    return ((h & 0xFFFFF) * 2654435761 % 1021).float() / 1020


def value_noise(p: Tensor, scale: float) -> Tensor:
    """Trilinearly interpolated hashed lattice values in [0, 1] at world points ``p`` (N,3)."""
    q = p * scale
    cell = torch.floor(q)
    f = q - cell
    f = f * f * (3 - 2 * f)  # smoothstep
    cell = cell.long()
    out = torch.zeros_like(q[:, 0])
    for corner in range(8):
        offset = torch.tensor([(corner >> k) & 1 for k in range(3)], device=p.device)
        weight = torch.where(offset.bool(), f, 1 - f).prod(-1)
        out = out + weight * lattice_hash(cell + offset).to(p.dtype)
    return out


def texture(hit: Tensor, instance: Tensor, num_room_surfaces: int) -> Tensor:
    """Brightness multiplier in about [0.6, 1.15]: floor planks, noisy walls, furniture checker/stripes/noise."""
    noise = value_noise(hit, 6.0)
    plank = torch.floor(hit[:, 0] / 0.18).long()  # planks run along z, 18 cm wide
    grain = value_noise(hit * torch.tensor([8.0, 1.0, 0.5], dtype=hit.dtype, device=hit.device), 4.0)
    planks = 0.75 + 0.25 * lattice_hash(torch.stack([plank, plank, plank], -1)).to(hit.dtype) + 0.15 * grain
    checker = (torch.floor(hit * 5.0).sum(-1) % 2)
    stripes = (torch.floor(hit[:, 1] * 12.0) % 2)
    kind = (instance - num_room_surfaces) % 3
    furniture = torch.where(kind == 0, 0.8 + 0.25 * checker,
                            torch.where(kind == 1, 0.8 + 0.25 * stripes, 0.7 + 0.45 * noise))
    walls = 0.9 + 0.15 * noise
    return torch.where(instance == FLOOR, planks, torch.where(instance < num_room_surfaces, walls, furniture))


def shade(hit: Tensor, normal: Tensor, instance: Tensor, colours: Tensor, ray_dir: Tensor,
          num_room_surfaces: int) -> Tensor:
    """Linear RGB in [0,1] per ray: instance colour x texture x (ambient + Lambert from a fixed directional light)."""
    light = torch.tensor(LIGHT_DIR, dtype=hit.dtype, device=hit.device)
    light = light / light.norm()
    n = torch.nn.functional.normalize(normal, dim=-1)
    n = torch.where((n * ray_dir).sum(-1, keepdim=True) > 0, -n, n)  # face the camera
    lambert = (n @ light).clamp_min(0)
    albedo = colours[instance] * texture(hit, instance, num_room_surfaces)[:, None]
    return (albedo * (AMBIENT + (1 - AMBIENT) * lambert[:, None])).clamp(0, 1)
