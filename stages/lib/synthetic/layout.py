"""Room layout: furniture built from primitives, placed deterministically from a seed without overlaps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stages.lib.synthetic.primitives import Box, Cylinder

ROOM_HALF_X, ROOM_HALF_Z, ROOM_HEIGHT = 3.0, 3.0, 2.6
PLACEMENT_RADIUS = 2.2  # objects stay inside this radius; cameras orbit outside it


@dataclass
class SceneObject:
    category: str
    parts: list[Box | Cylinder]
    footprint: float  # radius kept free around the object (neighbours' corners may interpenetrate)


def _legs(cx: float, cz: float, hx: float, hz: float, yaw: float, height: float, r: float) -> list[Cylinder]:
    c, s = math.cos(yaw), math.sin(yaw)
    legs = []
    for sx, sz in ((-1, -1), (-1, 1), (1, -1), (1, 1)):
        lx, lz = sx * (hx - r), sz * (hz - r)
        legs.append(Cylinder(cx + c * lx + s * lz, cz - s * lx + c * lz, r, 0.0, height))
    return legs


def _offset(cx: float, cz: float, yaw: float, dx: float, dz: float) -> tuple[float, float]:
    c, s = math.cos(yaw), math.sin(yaw)
    return cx + c * dx + s * dz, cz - s * dx + c * dz


def build(category: str, cx: float, cz: float, yaw: float) -> SceneObject:
    """One piece of furniture of ``category`` at (cx, cz) facing ``yaw``."""
    if category == "chair":
        bx, bz = _offset(cx, cz, yaw, 0.0, -0.2)
        parts = [Box((cx, 0.45, cz), (0.22, 0.03, 0.22), yaw), Box((bx, 0.72, bz), (0.22, 0.25, 0.03), yaw)]
        return SceneObject(category, parts + _legs(cx, cz, 0.22, 0.22, yaw, 0.42, 0.025), 0.25)
    if category == "table":
        parts = [Box((cx, 0.74, cz), (0.55, 0.03, 0.4), yaw)]
        return SceneObject(category, parts + _legs(cx, cz, 0.55, 0.4, yaw, 0.71, 0.04), 0.5)
    if category == "desk":
        side = _offset(cx, cz, yaw, 0.4, 0.0)
        parts = [Box((cx, 0.74, cz), (0.6, 0.03, 0.3), yaw), Box((side[0], 0.36, side[1]), (0.18, 0.36, 0.28), yaw)]
        return SceneObject(category, parts, 0.55)
    if category == "sofa":
        back = _offset(cx, cz, yaw, 0.0, -0.35)
        arm_l, arm_r = _offset(cx, cz, yaw, -0.8, 0.0), _offset(cx, cz, yaw, 0.8, 0.0)
        parts = [Box((cx, 0.22, cz), (0.9, 0.22, 0.45), yaw), Box((back[0], 0.6, back[1]), (0.9, 0.3, 0.1), yaw),
                 Box((arm_l[0], 0.5, arm_l[1]), (0.1, 0.15, 0.45), yaw), Box((arm_r[0], 0.5, arm_r[1]), (0.1, 0.15, 0.45), yaw)]
        return SceneObject(category, parts, 0.8)
    if category == "bed":
        head = _offset(cx, cz, yaw, 0.0, -0.8)
        parts = [Box((cx, 0.25, cz), (0.55, 0.25, 0.85), yaw), Box((head[0], 0.55, head[1]), (0.55, 0.55, 0.05), yaw)]
        return SceneObject(category, parts, 0.8)
    if category == "cabinet":
        return SceneObject(category, [Box((cx, 0.5, cz), (0.4, 0.5, 0.3), yaw)], 0.4)
    if category == "bookshelf":
        return SceneObject(category, [Box((cx, 0.9, cz), (0.45, 0.9, 0.18), yaw)], 0.4)
    if category == "refrigerator":
        return SceneObject(category, [Box((cx, 0.85, cz), (0.35, 0.85, 0.35), yaw)], 0.4)
    if category == "toilet":
        tank = _offset(cx, cz, yaw, 0.0, -0.22)
        return SceneObject(category, [Cylinder(cx, cz, 0.2, 0.0, 0.42), Box((tank[0], 0.6, tank[1]), (0.2, 0.2, 0.08), yaw)], 0.3)
    raise ValueError(f"no template for category {category!r}")


# A room's worth of furniture: several chairs (same category, several instances) first.
CATALOGUE = ["chair", "chair", "table", "chair", "sofa", "cabinet", "bookshelf", "chair", "toilet", "bed",
             "desk", "refrigerator", "cabinet", "chair"]


def place_objects(num_objects: int, seed: int, attempts: int = 200) -> list[SceneObject]:
    """Rejection-sample non-overlapping floor positions inside PLACEMENT_RADIUS (whole layout restarted on failure)."""
    rng = np.random.default_rng(seed)
    categories = [CATALOGUE[i % len(CATALOGUE)] for i in range(num_objects)]
    radii = [build(c, 0, 0, 0).footprint for c in categories]
    for _ in range(attempts):
        placed: list[tuple[float, float, float]] = []
        for radius in radii:
            for _ in range(200):
                r = rng.uniform(0, PLACEMENT_RADIUS - radius * 0.6)
                a = rng.uniform(0, 2 * math.pi)
                cx, cz = r * math.cos(a), r * math.sin(a)
                if all(math.hypot(cx - x, cz - z) > radius + rr for x, z, rr in placed):
                    placed.append((cx, cz, radius))
                    break
            else:
                break
        if len(placed) == num_objects:
            return [build(c, x, z, float(rng.uniform(0, 2 * math.pi))) for c, (x, z, _) in zip(categories, placed)]
    raise ValueError(f"cannot place {num_objects} objects without overlap; use fewer")
