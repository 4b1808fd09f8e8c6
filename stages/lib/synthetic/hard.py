"""The hard benchmark room (``difficulty: hard``): real-scan difficulty in the synthetic generator.

38 instances over 17 ScanNet-19 classes: furniture standing against the walls (bed with a nightstand touching it,
sofa with a coffee table, bookshelf, refrigerator, counter with a sink on it and a cabinet touching it, desk with a
chair, toilet), thin objects flat on the walls (pictures, windows, a door, curtains flanking a window), a dining table
in the middle with four chairs pushed under it, and clutter on the table tops (small boxes and bottles of no
ScanNet-19 class: semantic label -1, ScanNet's ``otherprop``). The four wall groups are dealt to the walls by the seed,
shifted along their wall, and the dining group is shifted and turned, so two seeds give two different rooms.
"""

from __future__ import annotations

import math

import numpy as np

from stages.lib.synthetic.furniture import TEMPLATES, Footprint, SceneObject, build
from stages.lib.synthetic.layout import ROOM_HALF
from stages.lib.synthetic.primitives import Box, Cylinder

CLUTTER = "object"  # no ScanNet-19 class (NYU40 40, otherprop)
WALL_DEPTH = {"picture": 0.015, "window": 0.03, "door": 0.025, "curtain": 0.04}  # half thickness off the wall
# A wall group: (kind, u along the wall, parameters). Furniture: ("furniture", u, category, distance of the object's
# back from the wall). Flat objects: ("flat", u, category, (half width, y centre, half height)). Clutter on the top
# of a desk or table: ("clutter", u, shape, distance from the wall).
WALL_GROUPS: list[list[tuple]] = [
    [("furniture", -0.8, "bed", 0.0), ("furniture", -1.75, "cabinet", 0.0),
     ("flat", -0.8, "picture", (0.3, 1.55, 0.2)), ("flat", 1.6, "window", (0.55, 1.5, 0.45))],
    [("furniture", 0.3, "sofa", 0.0), ("furniture", 0.3, "table", 0.95),
     ("flat", -0.2, "picture", (0.22, 1.5, 0.16)), ("flat", 0.8, "picture", (0.22, 1.5, 0.16)),
     ("flat", -1.8, "window", (0.4, 1.45, 0.5)), ("flat", -2.4, "curtain", (0.175, 1.35, 1.05)),
     ("flat", -1.2, "curtain", (0.175, 1.35, 1.05))],
    [("furniture", -2.4, "bookshelf", 0.0), ("furniture", -1.45, "refrigerator", 0.0),
     ("furniture", -0.05, "counter", 0.0), ("furniture", 1.05, "cabinet", 0.0), ("sink", 0.1, "sink", 0.0),
     ("flat", 2.4, "window", (0.45, 1.5, 0.45))],
    [("furniture", -1.5, "desk", 0.0), ("chair_front", -1.5, "chair", 0.62),
     ("clutter", -1.3, "box", 0.3), ("clutter", -1.8, "bottle", 0.2),
     ("flat", 0.6, "door", (0.45, 1.025, 1.025)), ("furniture", 2.2, "toilet", 0.0),
     ("flat", -1.5, "picture", (0.3, 1.65, 0.22))],
]
TOP_Y = 0.77  # table and desk tops
CLUTTER_SHAPES = {"box": (0.08, 0.06, 0.06), "book": (0.11, 0.02, 0.08), "bottle": (0.035, 0.11, 0.0)}


def _wall_frame(wall: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A wall's foot point at u = 0, its inward normal and its tangent (xz vectors)."""
    normal = [np.array([1.0, 0.0]), np.array([-1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.0, -1.0])][wall]
    tangent = np.array([-normal[1], normal[0]])
    return -ROOM_HALF * normal, normal, tangent


def _yaw_facing(normal: np.ndarray) -> float:
    """Yaw that turns a template's front (+z) towards ``normal`` (build maps local +z to (sin yaw, cos yaw))."""
    return math.atan2(normal[0], normal[1])


def _flat(category: str, foot: np.ndarray, normal: np.ndarray, tangent: np.ndarray, u: float,
          size: tuple[float, float, float]) -> SceneObject:
    """A thin box flat against the wall (picture, window, door, curtain)."""
    half_w, y, half_h = size
    depth = WALL_DEPTH[category]
    cx, cz = foot + normal * depth + tangent * u
    yaw = _yaw_facing(normal)
    return SceneObject(category, (Box((cx, y, cz), (half_w, half_h, depth), yaw),),
                       Footprint(cx, cz, half_w, depth, yaw))


def _clutter(shape: str, cx: float, cz: float, yaw: float) -> SceneObject:
    hx, hy, hz = CLUTTER_SHAPES[shape]
    if shape == "bottle":
        parts = (Cylinder(cx, cz, hx, TOP_Y, TOP_Y + 2 * hy),)
        return SceneObject(CLUTTER, parts, Footprint(cx, cz, hx, hx, 0.0))
    return SceneObject(CLUTTER, (Box((cx, TOP_Y + hy, cz), (hx, hy, hz), yaw),), Footprint(cx, cz, hx, hz, yaw))


def _template_depth(category: str) -> float:
    return TEMPLATES[category][0][1]


def _wall_group(group: list[tuple], wall: int, shift: float) -> list[SceneObject]:
    foot, normal, tangent = _wall_frame(wall)
    yaw = _yaw_facing(normal)
    objects: list[SceneObject] = []
    last_front = 0.0
    for kind, u, category, extra in group:
        u = u + shift
        if kind == "flat":
            objects.append(_flat(category, foot, normal, tangent, u, extra))
        elif kind in ("furniture", "chair_front"):
            hz = _template_depth(category)
            away = extra + hz if kind == "furniture" else last_front + extra
            cx, cz = foot + normal * away + tangent * u
            obj_yaw = yaw if kind == "furniture" else yaw + math.pi  # the chair faces the desk
            objects.append(build(category, cx, cz, obj_yaw))
            if kind == "furniture":
                last_front = away
        elif kind == "sink":  # a basin standing on the counter top, touching it
            cx, cz = foot + normal * 0.3 + tangent * u
            objects.append(SceneObject(category, (Box((cx, 0.96, cz), (0.22, 0.06, 0.18), yaw),),
                                       Footprint(cx, cz, 0.22, 0.18, yaw)))
        else:  # clutter standing on a top; ``category`` names the shape
            cx, cz = foot + normal * extra + tangent * u
            objects.append(_clutter(category, cx, cz, yaw))
    return objects


def _dining(cx: float, cz: float, yaw: float, rng: np.random.Generator) -> list[SceneObject]:
    """A table with four chairs pushed 10 cm under it and three clutter items on its top."""
    c, s = math.cos(yaw), math.sin(yaw)

    def world(dx: float, dz: float) -> tuple[float, float]:
        return cx + c * dx + s * dz, cz - s * dx + c * dz

    objects = [build("table", cx, cz, yaw)]
    for dx, dz, dyaw in ((0.0, -0.53, 0.0), (0.0, 0.53, math.pi), (-0.67, 0.0, math.pi / 2),
                         (0.67, 0.0, -math.pi / 2)):
        objects.append(build("chair", *world(dx, dz), yaw + dyaw))
    for shape, (dx, dz) in zip(("box", "bottle", "book"), ((-0.3, -0.15), (0.05, 0.12), (0.32, -0.05))):
        jx, jz = rng.uniform(-0.06, 0.06, 2)
        objects.append(_clutter(shape, *world(dx + jx, dz + jz), yaw + rng.uniform(-0.5, 0.5)))
    return objects


def hard_objects(rng: np.random.Generator) -> list[SceneObject]:
    """The hard room's objects (order: wall groups on walls 0-3 after the seed's deal, then the dining group)."""
    walls = rng.permutation(4)
    objects: list[SceneObject] = []
    for group, wall in zip(WALL_GROUPS, walls):
        objects += _wall_group(group, int(wall), float(rng.uniform(-0.2, 0.2)))
    dx, dz = rng.uniform(-0.25, 0.25, 2)
    objects += _dining(float(dx), float(dz), float(rng.uniform(-0.35, 0.35)), rng)
    return objects
