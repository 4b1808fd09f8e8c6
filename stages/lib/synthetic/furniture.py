"""Furniture templates: each category as boxes and vertical cylinders in its own frame (front towards +z)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from stages.lib.synthetic.primitives import Box, Cylinder

Part = Box | Cylinder
_LEG = 0.025


@dataclass(frozen=True)
class Footprint:
    """Yaw-rotated rectangle on the floor (centre, half extents along the object's local x and z)."""

    cx: float
    cz: float
    hx: float
    hz: float
    yaw: float

    def corners(self) -> np.ndarray:
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [self.hx, self.hz]
        return np.stack([self.cx + c * local[:, 0] + s * local[:, 1], self.cz - s * local[:, 0] + c * local[:, 1]], 1)

    def overlaps(self, other: "Footprint", gap: float) -> bool:
        """Separating-axis test of the two rectangles, each grown by ``gap / 2``."""
        a, b = self.corners(), other.corners()
        for yaw in (self.yaw, other.yaw):
            for axis in (np.array([math.cos(yaw), -math.sin(yaw)]), np.array([math.sin(yaw), math.cos(yaw)])):
                pa, pb = a @ axis, b @ axis
                if pa.max() + gap <= pb.min() or pb.max() + gap <= pa.min():
                    return False
        return True


@dataclass(frozen=True)
class SceneObject:
    """One furniture instance: its category, world-space primitives and floor footprint."""

    category: str
    parts: tuple[Part, ...]
    footprint: Footprint


def _legs(hx: float, hz: float, height: float, r: float = _LEG) -> list[tuple[str, tuple[float, ...]]]:
    return [("cyl", (sx * (hx - r), sz * (hz - r), r, 0.0, height)) for sx in (-1, 1) for sz in (-1, 1)]


def _shelves(hx: float, hy: float, hz: float, n: int) -> list[tuple[str, tuple[float, ...]]]:
    board = 0.02
    parts = [("box", (sx * (hx - board), hy, 0.0, board, hy, hz)) for sx in (-1, 1)]
    parts.append(("box", (0.0, hy, -hz + board, hx, hy, board)))
    step = (2 * hy - 2 * board) / (n - 1)
    parts += [("box", (0.0, board + k * step, 0.0, hx - 2 * board, board, hz)) for k in range(n)]
    return parts


# category -> (footprint half extents (hx, hz), parts): ("box", (x, y, z, half_x, half_y, half_z)) or
# ("cyl", (x, z, radius, y0, y1)), all in the object frame.
TEMPLATES: dict[str, tuple[tuple[float, float], list[tuple[str, tuple[float, ...]]]]] = {
    "chair": ((0.22, 0.23), [("box", (0.0, 0.45, 0.0, 0.22, 0.03, 0.22)), ("box", (0.0, 0.75, -0.2, 0.22, 0.27, 0.03))]
              + _legs(0.22, 0.22, 0.42)),
    "table": ((0.55, 0.4), [("box", (0.0, 0.74, 0.0, 0.55, 0.03, 0.4))] + _legs(0.55, 0.4, 0.71, 0.04)),
    "desk": ((0.6, 0.3), [("box", (0.0, 0.74, 0.0, 0.6, 0.03, 0.3)), ("box", (0.4, 0.355, 0.0, 0.18, 0.355, 0.28)),
                          ("cyl", (-0.56, -0.26, 0.03, 0.0, 0.71)), ("cyl", (-0.56, 0.26, 0.03, 0.0, 0.71))]),
    "sofa": ((0.9, 0.45), [("box", (0.0, 0.22, 0.05, 0.8, 0.22, 0.4)), ("box", (0.0, 0.55, -0.35, 0.9, 0.35, 0.1)),
                           ("box", (-0.8, 0.32, 0.05, 0.1, 0.32, 0.4)), ("box", (0.8, 0.32, 0.05, 0.1, 0.32, 0.4))]),
    "bed": ((0.55, 0.85), [("box", (0.0, 0.25, 0.0, 0.55, 0.25, 0.85)), ("box", (0.0, 0.55, -0.8, 0.55, 0.55, 0.05)),
                           ("box", (0.0, 0.55, -0.55, 0.4, 0.05, 0.15))]),
    "cabinet": ((0.4, 0.33), [("box", (0.0, 0.5, 0.0, 0.4, 0.5, 0.3)), ("cyl", (0.3, 0.31, 0.012, 0.6, 0.9))]),
    "bookshelf": ((0.45, 0.18), _shelves(0.45, 0.9, 0.18, 5)),
    "refrigerator": ((0.35, 0.37), [("box", (0.0, 0.85, 0.0, 0.35, 0.85, 0.35)),
                                    ("cyl", (0.27, 0.355, 0.015, 0.9, 1.5))]),
    "counter": ((0.7, 0.3), [("box", (0.0, 0.45, 0.0, 0.7, 0.45, 0.3))]),
    "toilet": ((0.2, 0.3), [("cyl", (0.0, 0.05, 0.2, 0.0, 0.42)), ("box", (0.0, 0.6, -0.22, 0.2, 0.2, 0.08))]),
}


def build(category: str, cx: float, cz: float, yaw: float) -> SceneObject:
    """Instantiate a template at floor position (cx, cz), rotated by ``yaw`` about the vertical axis."""
    if category not in TEMPLATES:
        raise ValueError(f"no furniture template for category {category!r}")
    (hx, hz), spec = TEMPLATES[category]
    c, s = math.cos(yaw), math.sin(yaw)
    parts: list[Part] = []
    for kind, p in spec:
        x, z = (p[0], p[2]) if kind == "box" else (p[0], p[1])
        wx, wz = cx + c * x + s * z, cz - s * x + c * z
        if kind == "box":
            parts.append(Box((wx, p[1], wz), (p[3], p[4], p[5]), yaw))
        else:
            parts.append(Cylinder(wx, wz, p[2], p[3], p[4]))
    return SceneObject(category, tuple(parts), Footprint(cx, cz, hx, hz, yaw))
