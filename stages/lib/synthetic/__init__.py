"""Deterministic synthetic indoor scenes with exact ground truth (depth, instance and semantic maps, labelled points).

A box room (floor, ceiling, four walls) with furniture from the ScanNet vocabulary built from analytic
primitives and procedural textures, ray cast in PyTorch (CPU or GPU) from orbit or forward-facing cameras.
The ceiling is not a ScanNet-19 category: its semantic label is -1 (its instance id is still set).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.synthetic.cameras import forward_facing, orbit
from stages.lib.synthetic.layout import place_objects
from stages.lib.synthetic.raycast import NUM_ROOM_SURFACES, cast, pixel_rays
from stages.lib.synthetic.shading import shade

__all__ = ["SCANNET19", "SyntheticConfig", "make_scene"]
MIN_OBJECTS = 8


@dataclass
class SyntheticConfig:
    """The knobs of a synthetic scene; everything else follows from ``seed``."""

    seed: int = 0
    num_objects: int = 10
    num_views: int = 24
    width: int = 64
    height: int = 48
    trajectory: str = "orbit"
    fov_deg: float = 60.0
    test_every: int = 8
    num_points: int = 20000
    device: str = "cpu"


def room_categories(num_objects: int, objects) -> list[int]:
    """Semantic id per instance: floor, ceiling (-1), four walls, then the furniture."""
    ids = [SCANNET19.index("floor"), -1] + [SCANNET19.index("wall")] * 4
    return ids + [SCANNET19.index(o.category) for o in objects]


def make_scene(cfg: SyntheticConfig) -> SceneData:
    """Generate the scene described by ``cfg``."""
    if cfg.num_objects < MIN_OBJECTS:
        raise ValueError(f"num_objects must be >= {MIN_OBJECTS}, got {cfg.num_objects}")
    if cfg.trajectory not in ("orbit", "forward"):
        raise ValueError(f"trajectory must be 'orbit' or 'forward', got {cfg.trajectory!r}")
    rng = np.random.default_rng(cfg.seed)
    objects = place_objects(cfg.num_objects, cfg.seed)
    categories = np.array(room_categories(cfg.num_objects, objects), dtype=np.int32)
    w2c = (orbit if cfg.trajectory == "orbit" else forward_facing)(cfg.num_views, rng).astype(np.float32)
    focal = 0.5 * cfg.width / math.tan(math.radians(cfg.fov_deg) / 2)
    K = np.array([[focal, 0, cfg.width / 2], [0, focal, cfg.height / 2], [0, 0, 1]], dtype=np.float32)
    device = torch.device(cfg.device)
    palette = torch.from_numpy(rng.uniform(0.15, 0.9, (len(categories), 3))).float().to(device)

    v, h, w = cfg.num_views, cfg.height, cfg.width
    images = np.zeros((v, h, w, 3), np.uint8)
    depth = np.zeros((v, h, w), np.float32)
    instance = np.zeros((v, h, w), np.int32)
    points: list[np.ndarray] = []
    is_test = np.arange(v) % cfg.test_every == 0
    for i in tqdm(range(v), desc="synthetic views", disable=v < 50):
        o, d = pixel_rays(torch.from_numpy(w2c[i]).to(device), torch.from_numpy(K).to(device), w, h)
        t, inst, normal = cast(o, d, objects)
        hit = o + t[:, None] * d
        rgb = shade(hit, normal, inst, palette, d)
        images[i] = (rgb.clamp(0, 1) * 255).round().byte().reshape(h, w, 3).cpu().numpy()
        depth[i] = t.reshape(h, w).cpu().numpy()
        instance[i] = inst.reshape(h, w).cpu().numpy()
        if not is_test[i]:
            points.append(np.concatenate([hit.cpu().numpy(), images[i].reshape(-1, 3),
                                          instance[i].reshape(-1, 1)], axis=1))
    cloud = np.concatenate(points)
    cloud = cloud[rng.choice(len(cloud), size=min(cfg.num_points, len(cloud)), replace=False)]
    point_instance = cloud[:, 6].astype(np.int32)
    return SceneData(
        images=images, intrinsics=np.repeat(K[None], v, 0), world_to_camera=w2c, is_test=is_test,
        points_xyz=cloud[:, :3].astype(np.float32), points_rgb=cloud[:, 3:6].astype(np.uint8),
        image_names=[f"view_{i:04d}" for i in range(v)], source=f"synthetic(seed={cfg.seed})",
        categories=list(SCANNET19), background=(0.0, 0.0, 0.0), depth=depth,
        gt_semantic=categories[instance], gt_instance=instance,
        points_semantic=categories[point_instance], points_instance=point_instance,
        extra_attrs={"synthetic_config": asdict(cfg), "instance_categories": categories.tolist(),
                     "num_room_surfaces": NUM_ROOM_SURFACES},
    ).validate()
