"""Ray intersection with analytic primitives (yaw-rotated boxes, vertical cylinders, the room's inside)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

INF = float("inf")


@dataclass(frozen=True)
class Box:
    """Box with centre, half extents (x,y,z) and a rotation ``yaw`` about the vertical (y) axis."""

    centre: tuple[float, float, float]
    half: tuple[float, float, float]
    yaw: float = 0.0


@dataclass(frozen=True)
class Cylinder:
    """Vertical cylinder: axis through (cx, cz), radius, from y0 to y1."""

    cx: float
    cz: float
    radius: float
    y0: float
    y1: float


def _yaw_matrix(yaw: float, like: Tensor) -> Tensor:
    """Rotation by ``yaw`` about +y, mapping the box frame to the world (x' = c x + s z, z' = -s x + c z)."""
    c, s = math.cos(yaw), math.sin(yaw)
    return torch.tensor([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=like.dtype, device=like.device)


def intersect_box(o: Tensor, d: Tensor, box: Box) -> tuple[Tensor, Tensor]:
    """Slab test in the box frame: entry distance t (inf on miss) and world-space outward normals."""
    rot = _yaw_matrix(box.yaw, o)  # box-to-world rotation
    centre = torch.tensor(box.centre, dtype=o.dtype, device=o.device)
    half = torch.tensor(box.half, dtype=o.dtype, device=o.device)
    lo_o, lo_d = (o - centre) @ rot, d @ rot
    safe = torch.where(lo_d.abs() < 1e-12, torch.full_like(lo_d, 1e-12), lo_d)
    t1, t2 = (-half - lo_o) / safe, (half - lo_o) / safe
    tmin, tmax = torch.minimum(t1, t2), torch.maximum(t1, t2)
    t_near, axis = tmin.max(-1)
    t_far = tmax.min(-1).values
    hit = (t_near <= t_far) & (t_near > 1e-6)
    normal_local = torch.zeros_like(lo_o)
    normal_local.scatter_(1, axis[:, None], -torch.sign(safe.gather(1, axis[:, None])))
    return torch.where(hit, t_near, torch.full_like(t_near, INF)), normal_local @ rot.T


def intersect_cylinder(o: Tensor, d: Tensor, cyl: Cylinder) -> tuple[Tensor, Tensor]:
    """Side and caps of a vertical cylinder: nearest positive t (inf on miss) and normals."""
    ox, oz = o[:, 0] - cyl.cx, o[:, 2] - cyl.cz
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = 2 * (ox * d[:, 0] + oz * d[:, 2])
    c = ox ** 2 + oz ** 2 - cyl.radius ** 2
    disc = b ** 2 - 4 * a * c
    sq = torch.sqrt(disc.clamp_min(0))
    t_side = (-b - sq) / (2 * a.clamp_min(1e-12))
    y_side = o[:, 1] + t_side * d[:, 1]
    side_ok = (disc >= 0) & (t_side > 1e-6) & (y_side >= cyl.y0) & (y_side <= cyl.y1)
    t = torch.where(side_ok, t_side, torch.full_like(t_side, INF))
    normal = torch.stack([ox + t_side * d[:, 0], torch.zeros_like(ox), oz + t_side * d[:, 2]], -1) / cyl.radius
    for y_cap, sign in ((cyl.y1, 1.0), (cyl.y0, -1.0)):
        t_cap = (y_cap - o[:, 1]) / torch.where(d[:, 1].abs() < 1e-12, torch.full_like(d[:, 1], 1e-12), d[:, 1])
        px, pz = ox + t_cap * d[:, 0], oz + t_cap * d[:, 2]
        cap_ok = (t_cap > 1e-6) & (px ** 2 + pz ** 2 <= cyl.radius ** 2) & (t_cap < t)
        t = torch.where(cap_ok, t_cap, t)
        normal = torch.where(cap_ok[:, None], torch.tensor([0.0, sign, 0.0], dtype=o.dtype, device=o.device), normal)
    return t, normal


def intersect_room(o: Tensor, d: Tensor, half: float, height: float) -> tuple[Tensor, Tensor]:
    """Rays from inside the room [-half, half] x [0, height] x [-half, half]: exit distance and surface hit.

    Surfaces: 0 floor, 1 ceiling, 2 wall x=-half, 3 wall x=+half, 4 wall z=-half, 5 wall z=+half.
    """
    planes = [(1, 0.0), (1, height), (0, -half), (0, half), (2, -half), (2, half)]
    ts = []
    for axis, value in planes:
        da = d[:, axis]
        t = (value - o[:, axis]) / torch.where(da.abs() < 1e-12, torch.full_like(da, 1e-12), da)
        ts.append(torch.where(t > 1e-6, t, torch.full_like(t, INF)))
    t, surface = torch.stack(ts, -1).min(-1)
    return t, surface
