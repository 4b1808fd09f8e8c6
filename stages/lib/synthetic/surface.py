"""A labelled point cloud sampled on every surface of the room and its furniture, as a scan's mesh vertices are:
it also covers surfaces that some or all views never see (under tables, behind sofas, the backs of shelves)."""

from __future__ import annotations

import math

import numpy as np

from stages.lib.synthetic.furniture import SceneObject
from stages.lib.synthetic.layout import ROOM_HALF, ROOM_HEIGHT
from stages.lib.synthetic.primitives import Box, Cylinder

INSIDE_MARGIN = 1e-4  # a sample deeper than this inside another part is covered and dropped


def _box_faces(box: Box) -> list[tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """(area, centre, axis u (half extent), axis v (half extent), normal) of each face, in world space."""
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    axes = [np.array([c, 0.0, -s]), np.array([0.0, 1.0, 0.0]), np.array([s, 0.0, c])]  # box-to-world columns
    centre, half = np.array(box.centre), np.array(box.half)
    faces = []
    for k in range(3):
        i, j = [a for a in range(3) if a != k]
        for sign in (-1.0, 1.0):
            faces.append((4 * half[i] * half[j], centre + sign * half[k] * axes[k], axes[i] * half[i],
                          axes[j] * half[j], sign * axes[k]))
    return faces


def _sample_box(box: Box, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    faces = _box_faces(box)
    area = np.array([f[0] for f in faces])
    pick = rng.choice(len(faces), size=n, p=area / area.sum())
    uv = rng.uniform(-1, 1, (n, 2))
    centre = np.stack([faces[f][1] for f in pick])
    u = np.stack([faces[f][2] for f in pick])
    v = np.stack([faces[f][3] for f in pick])
    return centre + uv[:, :1] * u + uv[:, 1:] * v, np.stack([faces[f][4] for f in pick])


def _sample_cylinder(cyl: Cylinder, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    side, cap = 2 * math.pi * cyl.radius * (cyl.y1 - cyl.y0), math.pi * cyl.radius ** 2
    kind = rng.choice(3, size=n, p=np.array([side, cap, cap]) / (side + 2 * cap))
    angle = rng.uniform(0, 2 * math.pi, n)
    radius = np.where(kind == 0, cyl.radius, cyl.radius * np.sqrt(rng.uniform(0, 1, n)))
    y = np.where(kind == 0, rng.uniform(cyl.y0, cyl.y1, n), np.where(kind == 1, cyl.y1, cyl.y0))
    xyz = np.stack([cyl.cx + radius * np.cos(angle), y, cyl.cz + radius * np.sin(angle)], 1)
    normal = np.where((kind == 0)[:, None], np.stack([np.cos(angle), 0 * angle, np.sin(angle)], 1),
                      np.stack([0 * angle, np.where(kind == 1, 1.0, -1.0), 0 * angle], 1))
    return xyz, normal


def _inside(part: Box | Cylinder, xyz: np.ndarray) -> np.ndarray:
    """Points strictly inside the part (by more than INSIDE_MARGIN)."""
    if isinstance(part, Cylinder):
        r = np.hypot(xyz[:, 0] - part.cx, xyz[:, 2] - part.cz)
        return (r < part.radius - INSIDE_MARGIN) & (xyz[:, 1] > part.y0 + INSIDE_MARGIN) \
            & (xyz[:, 1] < part.y1 - INSIDE_MARGIN)
    c, s = math.cos(part.yaw), math.sin(part.yaw)
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    local = (xyz - np.array(part.centre)) @ rot
    return (np.abs(local) < np.array(part.half) - INSIDE_MARGIN).all(1)


def _part_area(part: Box | Cylinder) -> float:
    if isinstance(part, Box):
        return sum(f[0] for f in _box_faces(part))
    return 2 * math.pi * part.radius * (part.y1 - part.y0 + part.radius)


def sample_surfaces(objects: list[SceneObject], num_points: int, num_room_surfaces: int,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """About ``num_points`` points spread over all surfaces by area: xyz (P,3), outward normals (P,3) and instance
    ids (room surfaces 0..5: floor, ceiling, walls x-, x+, z-, z+; furniture from ``num_room_surfaces``). Samples
    inside another part (where parts touch or interpenetrate) or outside the room are dropped."""
    h, e = ROOM_HALF, ROOM_HEIGHT
    room = [Box((0.0, 0.0, 0.0), (h, 0.0, h)), Box((0.0, e, 0.0), (h, 0.0, h)),
            Box((-h, e / 2, 0.0), (0.0, e / 2, h)), Box((h, e / 2, 0.0), (0.0, e / 2, h)),
            Box((0.0, e / 2, -h), (h, e / 2, 0.0)), Box((0.0, e / 2, h), (h, e / 2, 0.0))]
    inward = np.array([[0, 1, 0], [0, -1, 0], [1, 0, 0], [-1, 0, 0], [0, 0, 1], [0, 0, -1]], float)
    parts = [(k, p) for k, p in enumerate(room)]
    parts += [(num_room_surfaces + k, p) for k, o in enumerate(objects) for p in o.parts]
    area = np.array([_part_area(p) if k >= num_room_surfaces else 4 * max(p.half[0] * p.half[1], p.half[1]
                     * p.half[2], p.half[0] * p.half[2]) for k, p in parts])
    counts = rng.multinomial(num_points, area / area.sum())
    furniture = [p for _, p in parts[len(room):]]
    xyz, normal, inst = [], [], []
    for (k, part), n in zip(parts, counts):
        if n == 0:
            continue
        if k < num_room_surfaces:
            p, _ = _sample_box(part, n, rng)
            nrm = np.repeat(inward[k][None], n, 0)
        elif isinstance(part, Box):
            p, nrm = _sample_box(part, n, rng)
        else:
            p, nrm = _sample_cylinder(part, n, rng)
        keep = (np.abs(p[:, [0, 2]]) <= h + 1e-9).all(1) & (p[:, 1] >= -1e-9) & (p[:, 1] <= e + 1e-9)
        for other in furniture:
            if other is not part:
                keep &= ~_inside(other, p)
        xyz.append(p[keep])
        normal.append(nrm[keep])
        inst.append(np.full(int(keep.sum()), k, np.int32))
    return np.concatenate(xyz), np.concatenate(normal), np.concatenate(inst)
