"""Room dimensions and the seeded, non-overlapping placement of furniture groups on its floor."""

from __future__ import annotations

import math

import numpy as np

from stages.lib.synthetic.furniture import SceneObject, build

ROOM_HALF, ROOM_HEIGHT = 3.5, 2.6  # square room [-3.5, 3.5]^2 on the xz plane, floor y=0, ceiling y=2.6
PLACEMENT_RADIUS = 2.4  # every footprint corner stays inside this radius; orbit cameras fly outside it
GAP = 0.05  # minimum free space between two footprints (metres)

# Groups of (category, dx, dz, dyaw) in the group frame: a table with chairs pulled up to three of its sides, etc.
# The catalogue is flattened (and repeated) until ``num_objects`` objects are taken, so groups may be cut short.
_DINING = [("table", 0.0, 0.0, 0.0), ("chair", 0.0, -0.72, 0.0), ("chair", 0.0, 0.72, math.pi),
           ("chair", 0.87, 0.0, -math.pi / 2)]
CATALOGUE: list[list[tuple[str, float, float, float]]] = [
    _DINING, [("sofa", 0, 0, 0)], [("bed", 0, 0, 0)], [("cabinet", 0, 0, 0)], [("bookshelf", 0, 0, 0)],
    [("desk", 0, 0, 0), ("chair", 0.0, 0.62, math.pi)], [("refrigerator", 0, 0, 0)], [("toilet", 0, 0, 0)],
    [("cabinet", 0, 0, 0)],
]


def _take(num_objects: int) -> list[list[tuple[str, float, float, float]]]:
    """The first ``num_objects`` catalogue entries, still grouped."""
    groups, left = [], num_objects
    while left > 0:
        for group in CATALOGUE:
            if left <= 0:
                break
            groups.append(group[:left])
            left -= len(groups[-1])
    return groups


def _pose(gx: float, gz: float, gyaw: float, dx: float, dz: float, dyaw: float) -> tuple[float, float, float]:
    c, s = math.cos(gyaw), math.sin(gyaw)
    return gx + c * dx + s * dz, gz - s * dx + c * dz, gyaw + dyaw


def place_objects(num_objects: int, rng: np.random.Generator, tries: int = 400,
                  restarts: int = 50) -> list[SceneObject]:
    """Rejection-sample group poses so that footprints lie inside PLACEMENT_RADIUS and keep GAP between them."""
    groups = _take(num_objects)
    for _ in range(restarts):
        placed: list[SceneObject] = []
        for group in groups:
            for _ in range(tries):
                r, a = PLACEMENT_RADIUS * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
                gyaw = rng.uniform(0, 2 * math.pi)
                objs = [build(cat, *_pose(r * math.cos(a), r * math.sin(a), gyaw, dx, dz, dyaw))
                        for cat, dx, dz, dyaw in group]
                inside = all(np.hypot(*o.footprint.corners().T).max() <= PLACEMENT_RADIUS for o in objs)
                if inside and not any(o.footprint.overlaps(p.footprint, GAP) for o in objs for p in placed):
                    placed += objs
                    break
            else:
                break
        if len(placed) == num_objects:
            return placed
    raise ValueError(f"cannot place {num_objects} objects without overlap in the room; use fewer")
