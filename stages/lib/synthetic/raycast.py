"""Cast one view's rays against the room and its furniture: depth, instance, normal, hit point."""

from __future__ import annotations

import torch
from torch import Tensor

from stages.lib.synthetic.furniture import SceneObject
from stages.lib.synthetic.layout import ROOM_HALF, ROOM_HEIGHT
from stages.lib.synthetic.primitives import (
    Box,
    intersect_box,
    intersect_cylinder,
    intersect_room,
)

NUM_ROOM_SURFACES = 6  # instance ids 0..5: floor, ceiling, 4 walls; furniture follows


def pixel_rays(w2c: Tensor, K: Tensor, width: int, height: int) -> tuple[Tensor, Tensor]:
    """Ray origins and directions through pixel centres, scaled so that t equals camera z-depth."""
    v, u = torch.meshgrid(torch.arange(height, dtype=w2c.dtype, device=w2c.device) + 0.5,
                          torch.arange(width, dtype=w2c.dtype, device=w2c.device) + 0.5, indexing="ij")
    cam = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1).reshape(-1, 3)
    rot = w2c[:3, :3]
    d = cam @ rot  # R^T applied to row vectors
    o = (-rot.T @ w2c[:3, 3]).expand_as(d)
    return o, d


def cast(o: Tensor, d: Tensor, objects: list[SceneObject]) -> tuple[Tensor, Tensor, Tensor]:
    """Nearest hit per ray: t (= z-depth), instance id, world normal."""
    t, surface = intersect_room(o, d, ROOM_HALF, ROOM_HEIGHT)
    instance = surface.clone()
    room_normals = torch.tensor([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]],
                                dtype=o.dtype, device=o.device)
    normal = room_normals[surface]
    for k, obj in enumerate(objects):
        for part in obj.parts:
            tp, npart = intersect_box(o, d, part) if isinstance(part, Box) else intersect_cylinder(o, d, part)
            closer = tp < t
            t = torch.where(closer, tp, t)
            instance = torch.where(closer, torch.full_like(instance, NUM_ROOM_SURFACES + k), instance)
            normal = torch.where(closer[:, None], npart, normal)
    return t, instance, normal
