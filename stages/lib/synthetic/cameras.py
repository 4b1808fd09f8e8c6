"""Camera trajectories in the synthetic room (OpenCV convention, world y up)."""

from __future__ import annotations

import math

import numpy as np

from stages.lib.synthetic.layout import ROOM_HALF_Z


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """World-to-camera matrix of a camera at ``eye`` looking at ``target`` (x right, y down, z forward)."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = rot, -rot @ eye
    return w2c


def orbit(num_views: int, rng: np.random.Generator) -> np.ndarray:
    """Cameras on a ring near the walls, looking across the room at varying targets and heights."""
    poses = []
    for i in range(num_views):
        a = 2 * math.pi * i / num_views
        eye = np.array([2.8 * math.cos(a), 1.5 + 0.3 * math.sin(3 * a), 2.8 * math.sin(a)])
        target = np.array([0.0, 0.5, 0.0]) + rng.uniform(-0.5, 0.5, 3) * np.array([1, 0.3, 1])
        poses.append(look_at(eye, target))
    return np.stack(poses)


def forward_facing(num_views: int, rng: np.random.Generator) -> np.ndarray:
    """LLFF-like cameras on a small grid near one wall, all looking across the room."""
    cols = max(1, int(math.ceil(math.sqrt(num_views))))
    poses = []
    for i in range(num_views):
        x = (i % cols - (cols - 1) / 2) * 0.25
        y = 1.4 + (i // cols - (num_views // cols) / 2) * 0.12
        eye = np.array([x, y, -ROOM_HALF_Z + 0.3])
        target = np.array([x * 0.3, 0.6, 1.0]) + rng.uniform(-0.05, 0.05, 3)
        poses.append(look_at(eye, target))
    return np.stack(poses)
