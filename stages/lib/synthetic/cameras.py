"""Camera trajectories in the synthetic room: world-to-camera poses (OpenCV axes; the world's y axis points up)."""

from __future__ import annotations

import math

import numpy as np

from stages.lib.synthetic.layout import ROOM_HALF

ORBIT_RADIUS = ROOM_HALF - 0.3  # at least 0.8 m outside every footprint
ORBIT_HEIGHTS = (1.35, 1.85)  # two interleaved rings
LOOK_AT = np.array([0.0, 0.45, 0.0])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera matrix of a camera at ``eye`` looking at ``target`` with the world's up (+y) at the top."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    rot = np.stack([right, np.cross(forward, right), forward])  # rows: x right, y down, z forward
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rot, -rot @ eye
    return w2c


def orbit(num_views: int) -> np.ndarray:
    """Views spread evenly over 360 degrees on two rings around the room centre, tilted down towards it."""
    poses = []
    for i in range(num_views):
        a = 2 * math.pi * i / num_views
        eye = np.array([ORBIT_RADIUS * math.cos(a), ORBIT_HEIGHTS[i % 2], ORBIT_RADIUS * math.sin(a)])
        poses.append(look_at(eye, LOOK_AT))
    return np.stack(poses)


def forward_facing(num_views: int) -> np.ndarray:
    """LLFF-like: parallel cameras on a small grid in a plane near the z = -ROOM_HALF wall, looking across the room."""
    cols = math.ceil(math.sqrt(num_views))
    rows = math.ceil(num_views / cols)
    step = min(0.25, 1.2 / max(cols - 1, 1))
    z = -ROOM_HALF + 0.3
    rot = look_at(np.array([0.0, 1.5, z]), np.array([0.0, 0.5, 1.0]))[:3, :3]
    poses = []
    for i in range(num_views):
        eye = np.array([(i % cols - (cols - 1) / 2) * step, 1.5 + (i // cols - (rows - 1) / 2) * 0.6 * step, z])
        w2c = np.eye(4)
        w2c[:3, :3], w2c[:3, 3] = rot, -rot @ eye
        poses.append(w2c)
    return np.stack(poses)


WALK_HALF = 1.9  # the walk keeps >= 1.6 m from the walls, where only thin or low objects stand below eye height
WALK_HEIGHT = 1.5


def walk(num_views: int, seed: int = 0) -> np.ndarray:
    """A ScanNet-like hand-held walk: one lap of a rounded square (half size WALK_HALF) at about eye height, the
    camera swinging between the nearest wall and the room's middle (yaw +-110 degrees around the outward direction,
    five sweeps per lap), tilted down 5-35 degrees, with a little hand shake (seeded)."""
    rng = np.random.default_rng([seed, 3])
    poses = []
    for i in range(num_views):
        s = i / num_views
        a = 2 * math.pi * s
        # rounded square: superellipse |x|^4 + |z|^4 = r^4
        c, si = math.cos(a), math.sin(a)
        r = WALK_HALF / (c ** 4 + si ** 4) ** 0.25
        x, z = r * c, r * si
        outward = math.atan2(si, c) if abs(x) < 1e-9 else math.atan2(z, x)
        yaw = outward + math.radians(110) * math.sin(2 * math.pi * 5 * s) + rng.normal(0, 0.03)
        pitch = -math.radians(20 + 15 * math.sin(2 * math.pi * 7 * s)) + rng.normal(0, 0.02)
        eye = np.array([x, WALK_HEIGHT + 0.1 * math.sin(2 * math.pi * 4 * s), z]) + rng.normal(0, 0.02, 3)
        direction = np.array([math.cos(yaw) * math.cos(pitch), math.sin(pitch), math.sin(yaw) * math.cos(pitch)])
        poses.append(look_at(eye, eye + direction))
    return np.stack(poses)
