"""Deterministic synthetic indoor scenes with exact ground truth (depth, instance and semantic maps, labelled points).

A closed box room (floor, ceiling, four walls) holding furniture from the ScanNet-19 vocabulary, built from analytic
primitives with procedural textures and ray cast in PyTorch (CPU or GPU) from orbit, forward-facing or walk-through
cameras. Instance ids: 0 floor, 1 ceiling, 2-5 walls, then one per furniture object. The ceiling is not a ScanNet-19
class: its semantic label is -1 (as ScanNet's "ceiling" is ignored by the 19-class evaluation), as is the clutter of
the hard room (``difficulty: hard``, ``stages.lib.synthetic.hard``); every other pixel has a class.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.projection import project_centres
from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.synthetic.cameras import forward_facing, orbit, walk
from stages.lib.synthetic.furniture import SceneObject
from stages.lib.synthetic.hard import hard_objects
from stages.lib.synthetic.layout import place_objects
from stages.lib.synthetic.raycast import NUM_ROOM_SURFACES, cast, pixel_rays
from stages.lib.synthetic.shading import instance_colours, shade
from stages.lib.synthetic.surface import sample_surfaces

__all__ = ["SCANNET19", "SyntheticConfig", "make_scene"]
MIN_OBJECTS = 8
ROOM_CATEGORIES = ["floor", None, "wall", "wall", "wall", "wall"]  # None: the ceiling, semantic label -1
# Independent random streams, so that e.g. the number of views does not change the layout or the colours.
LAYOUT_STREAM, COLOUR_STREAM, POINTS_STREAM = 0, 1, 2


@dataclass
class SyntheticConfig:
    """The knobs of a synthetic scene; layout and colours follow from ``seed``, cameras from the trajectory.

    ``fov_deg`` is the horizontal field of view; pixels are square. Every ``test_every``-th view (from view 0)
    is a test view. ``num_points`` pixels of the train views (spread evenly over them, at most all of their pixels)
    are back-projected into the initial point cloud. About 13 objects fit into the room; more raise ``ValueError``.

    ``difficulty: hard`` builds the hard benchmark room (``stages.lib.synthetic.hard``: 38 instances, 17 classes; it
    ignores ``num_objects``). ``trajectory: walk`` is a ScanNet-like hand-held walk through the room
    (``cameras.walk``). ``cloud: surface`` samples ``num_points`` points on every surface by area, hidden ones
    included, instead of back-projecting train-view pixels (``surface.sample_surfaces``); ``cloud: scan`` keeps of
    those the points that at least one view (train or test) sees, as a scan's mesh holds only what its frames saw,
    so every point is hidden from some views but none from all.
    """

    seed: int = 0
    num_objects: int = 10
    num_views: int = 24
    width: int = 64
    height: int = 48
    trajectory: str = "orbit"
    fov_deg: float = 60.0
    test_every: int = 8
    num_points: int = 20000
    difficulty: str = "standard"
    cloud: str = "views"
    device: str = "cpu"


def intrinsics(cfg: SyntheticConfig) -> np.ndarray:
    """Pinhole K from the horizontal field of view, principal point at the image centre."""
    focal = 0.5 * cfg.width / math.tan(math.radians(cfg.fov_deg) / 2)
    return np.array([[focal, 0, cfg.width / 2], [0, focal, cfg.height / 2], [0, 0, 1]], dtype=np.float32)


def _check(cfg: SyntheticConfig) -> None:
    if cfg.difficulty not in ("standard", "hard"):
        raise ValueError(f"difficulty must be 'standard' or 'hard', got {cfg.difficulty!r}")
    if cfg.cloud not in ("views", "surface", "scan"):
        raise ValueError(f"cloud must be 'views', 'surface' or 'scan', got {cfg.cloud!r}")
    if cfg.difficulty == "standard" and cfg.num_objects < MIN_OBJECTS:
        raise ValueError(f"num_objects must be >= {MIN_OBJECTS}, got {cfg.num_objects}")
    if cfg.trajectory not in ("orbit", "forward", "walk"):
        raise ValueError(f"trajectory must be 'orbit', 'forward' or 'walk', got {cfg.trajectory!r}")
    if cfg.test_every < 2 or cfg.num_views < 2:
        raise ValueError(f"need num_views >= 2 and test_every >= 2 for a train/test split, got {cfg}")


def _sample_pixels(num_points: int, train: np.ndarray, pixels: int, rng: np.random.Generator) -> dict[int, np.ndarray]:
    """Pixel indices per train view, spreading ``num_points`` evenly over the train views."""
    counts = np.full(len(train), num_points // len(train))
    counts[: num_points % len(train)] += 1
    return {int(v): np.sort(rng.choice(pixels, size=min(int(n), pixels), replace=False)) for v, n in zip(train, counts)}


def trajectory(cfg: SyntheticConfig) -> np.ndarray:
    """World-to-camera poses of the configured trajectory."""
    if cfg.trajectory == "walk":
        return walk(cfg.num_views, cfg.seed)
    return (orbit if cfg.trajectory == "orbit" else forward_facing)(cfg.num_views)


def surface_cloud(objects: list, cfg: SyntheticConfig, colours: torch.Tensor,
                  device: torch.device) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Points on every surface (``cloud: surface``), coloured as a camera facing each surface would see them."""
    xyz, normal, inst = sample_surfaces(objects, cfg.num_points, NUM_ROOM_SURFACES,
                                        np.random.default_rng([cfg.seed, POINTS_STREAM]))
    hit = torch.from_numpy(xyz).float().to(device)
    n = torch.from_numpy(normal).float().to(device)
    rgb = shade(hit, n, torch.from_numpy(inst).long().to(device), colours, -n, NUM_ROOM_SURFACES)
    return xyz.astype(np.float32), (rgb * 255).round().byte().cpu().numpy(), inst


def seen_by_any_view(xyz: np.ndarray, w2c: np.ndarray, K: np.ndarray, width: int, height: int,
                     objects: list[SceneObject], device: torch.device, tolerance: float = 2e-3) -> np.ndarray:
    """Points that some view sees: the point projects into the view's image and the first surface on the ray from
    the camera centre to it is the point's own (no hit more than ``tolerance`` metres before it). An exact test, so
    the back of a picture and the wall behind it, which lie within a few centimetres of the picture's front, count
    as unseen: the surfaces a scan of these views would hold."""
    points = torch.from_numpy(np.asarray(xyz, np.float32)).to(device)
    K_t = torch.from_numpy(np.asarray(K, np.float32)).to(device)
    w2c_t = torch.from_numpy(np.asarray(w2c, np.float32)).to(device)
    seen = torch.zeros(len(points), dtype=torch.bool, device=device)
    for v in range(len(w2c)):
        pixel, _ = project_centres(points, w2c_t[v], K_t, width, height, near=1e-6)
        idx = torch.nonzero((pixel >= 0) & ~seen)[:, 0]
        if len(idx) == 0:
            continue
        rot, trans = w2c_t[v, :3, :3], w2c_t[v, :3, 3]
        origin = (-rot.T @ trans).expand(len(idx), 3).contiguous()
        ray = points[idx] - origin  # the point sits at t = 1
        t, _, _ = cast(origin, ray, objects)
        seen[idx[t >= 1 - tolerance / ray.norm(dim=1)]] = True
    return seen.cpu().numpy()


def unsampled_instances(sampled: np.ndarray, images: np.ndarray, depth: np.ndarray, instance: np.ndarray,
                        w2c: np.ndarray, K: np.ndarray, per_instance: int = 20
                        ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Back-projected pixels (up to ``per_instance``, from the first view showing it) of every instance that some
    view shows but no sampled point covers, so that a scan's mesh holds every object its frames saw."""
    out = []
    for inst in sorted(set(np.unique(instance).tolist()) - set(np.unique(sampled).tolist())):
        v = int(np.nonzero((instance == inst).any(axis=(1, 2)))[0][0])
        rows, cols = np.nonzero(instance[v] == inst)
        take = np.linspace(0, len(rows) - 1, min(per_instance, len(rows))).astype(int)
        rows, cols = rows[take], cols[take]
        z = depth[v, rows, cols]
        cam = np.stack([(cols + 0.5 - K[0, 2]) / K[0, 0] * z, (rows + 0.5 - K[1, 2]) / K[1, 1] * z, z], 1)
        xyz = (cam - w2c[v, :3, 3]) @ w2c[v, :3, :3]
        out.append((xyz.astype(np.float32), images[v, rows, cols], np.full(len(rows), inst, np.int32)))
    return out


def make_scene(cfg: SyntheticConfig) -> SceneData:
    """Generate the scene described by ``cfg`` (validated)."""
    _check(cfg)
    layout_rng = np.random.default_rng([cfg.seed, LAYOUT_STREAM])
    objects = hard_objects(layout_rng) if cfg.difficulty == "hard" else place_objects(cfg.num_objects, layout_rng)
    room = [-1 if c is None else SCANNET19.index(c) for c in ROOM_CATEGORIES]
    categories = np.array(room + [SCANNET19.index(o.category) if o.category in SCANNET19 else -1 for o in objects],
                          dtype=np.int32)
    device = torch.device(cfg.device)
    colours = instance_colours(len(categories), NUM_ROOM_SURFACES, np.random.default_rng([cfg.seed, COLOUR_STREAM]))
    colours_t = torch.from_numpy(colours).float().to(device)
    w2c = trajectory(cfg).astype(np.float32)
    K = intrinsics(cfg)
    K_t = torch.from_numpy(K).to(device)

    v, h, w = cfg.num_views, cfg.height, cfg.width
    is_test = np.arange(v) % cfg.test_every == 0
    picks = {} if cfg.cloud in ("surface", "scan") else _sample_pixels(cfg.num_points, np.where(~is_test)[0], h * w,
                                                             np.random.default_rng([cfg.seed, POINTS_STREAM]))
    images = np.zeros((v, h, w, 3), np.uint8)
    depth = np.zeros((v, h, w), np.float32)
    instance = np.zeros((v, h, w), np.int32)
    cloud: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # xyz, rgb, instance of the sampled pixels
    for i in tqdm(range(v), desc="synthetic views", unit="view"):
        o, d = pixel_rays(torch.from_numpy(w2c[i]).to(device), K_t, w, h)
        t, inst, normal = cast(o, d, objects)
        hit = o + t[:, None] * d
        rgb = shade(hit, normal, inst, colours_t, d, NUM_ROOM_SURFACES)
        images[i] = (rgb * 255).round().byte().reshape(h, w, 3).cpu().numpy()
        depth[i] = t.reshape(h, w).cpu().numpy()
        instance[i] = inst.reshape(h, w).cpu().numpy()
        if i in picks:
            p = picks[i]
            cloud.append((hit[torch.from_numpy(p).to(device)].cpu().numpy(), images[i].reshape(-1, 3)[p],
                          instance[i].reshape(-1)[p]))
    if cfg.cloud in ("surface", "scan"):
        cloud = [surface_cloud(objects, cfg, colours_t, device)]
        if cfg.cloud == "scan":
            seen = seen_by_any_view(cloud[0][0], w2c, K, w, h, objects, device)
            cloud = [tuple(a[seen] for a in cloud[0]), *unsampled_instances(cloud[0][2][seen], images, depth,
                                                                            instance, w2c, K)]
    points_xyz, points_rgb, points_instance = (np.concatenate(c) for c in zip(*cloud))
    return SceneData(
        images=images, intrinsics=np.repeat(K[None], v, 0), world_to_camera=w2c, is_test=is_test,
        points_xyz=points_xyz, points_rgb=points_rgb,
        image_names=[f"view_{i:04d}" for i in range(v)], source=f"synthetic(seed={cfg.seed})",
        categories=list(SCANNET19), background=(0.0, 0.0, 0.0), depth=depth,
        gt_semantic=categories[instance], gt_instance=instance,
        points_semantic=categories[points_instance], points_instance=points_instance,
        extra_attrs={"synthetic_config": asdict(cfg), "instance_categories": categories.tolist()},
    ).validate()
