"""The hard benchmark room (difficulty: hard), the walk-through trajectory, the surface point cloud and the export
of a synthetic room in the ScanNet layout."""

import math

import numpy as np
import pytest
import torch

from stages.lib.readers import read_scene
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.synthetic import LAYOUT_STREAM, SyntheticConfig, make_scene, seen_by_any_view
from stages.lib.synthetic.cameras import WALK_HALF, walk
from stages.lib.synthetic.furniture import Footprint, SceneObject
from stages.lib.synthetic.hard import CLUTTER, TOP_Y, hard_objects
from stages.lib.synthetic.layout import ROOM_HALF
from stages.lib.synthetic.primitives import Box
from stages.lib.synthetic.scannet_export import MESH_SUFFIX, export

WALL_OBJECTS = ("picture", "window", "door", "curtain")


def _box_corners(box: Box) -> np.ndarray:
    c, s = math.cos(box.yaw), math.sin(box.yaw)
    local = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]) * box.half
    rot = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    return local @ rot.T + box.centre


@pytest.mark.parametrize("seed", [0, 1])
def test_hard_room_has_25_instances_14_classes_thin_wall_objects_and_clutter(seed):
    objects = hard_objects(np.random.default_rng([seed, 0]))
    classes = {o.category for o in objects} - {CLUTTER}
    assert len(objects) + 5 >= 25 and len(classes | {"wall", "floor"}) >= 14  # + floor and four walls
    assert set(WALL_OBJECTS) <= classes and classes <= set(SCANNET19)
    for o in objects:
        if o.category in WALL_OBJECTS:
            corners = _box_corners(o.parts[0])
            off_wall = ROOM_HALF - np.abs(corners[:, [0, 2]]).max(0)
            assert off_wall.min() == pytest.approx(0, abs=1e-9), "flat against a wall"
            assert np.ptp(corners[:, [0, 2]], 0).min() <= 0.1, f"{o.category} is thin"
            assert np.abs(corners[:, [0, 2]]).max() <= ROOM_HALF + 1e-9
    clutter = [o for o in objects if o.category == CLUTTER]
    assert len(clutter) >= 4
    for o in clutter:
        part = o.parts[0]
        bottom = part.centre[1] - part.half[1] if isinstance(part, Box) else part.y0
        assert bottom == pytest.approx(TOP_Y), "clutter stands on a table or desk top"
    layouts = [[o.footprint.cx for o in hard_objects(np.random.default_rng([s, 0]))] for s in (0, 1)]
    assert layouts[0] != layouts[1], "the seed deals another room"


def test_walk_is_inside_the_room_and_not_an_orbit():
    w2c = walk(60, seed=0)
    centres = np.linalg.inv(w2c)[:, :3, 3]
    assert np.abs(centres[:, [0, 2]]).max() <= WALK_HALF + 0.1 < ROOM_HALF - 1.0
    radius = np.hypot(centres[:, 0], centres[:, 2])
    assert np.ptp(radius) > 0.3, "a rounded square, not a circle"
    forward = w2c[:, 2, :3]  # camera +z in world coordinates
    outward = np.stack([centres[:, 0], np.zeros(60), centres[:, 2]], 1) / radius[:, None]
    facing = (forward * outward).sum(1)
    assert facing.max() > 0.5 and facing.min() < -0.3, "looks both at the walls and into the room"
    assert (forward[:, 1] < 0).all(), "tilted down"


@pytest.fixture(scope="module")
def hard_scene():
    return make_scene(SyntheticConfig(seed=0, difficulty="hard", trajectory="walk", cloud="surface", num_views=6,
                                      width=32, height=24, num_points=4000))


def test_surface_cloud_covers_every_instance_and_surfaces_no_view_sees(hard_scene):
    s = hard_scene
    assert len(np.unique(s.points_instance)) == len(s.extra_attrs["instance_categories"])
    assert len(s.points_xyz) >= 3800, "few samples are dropped as covered"
    seen = np.zeros(len(s.points_xyz), bool)
    for v in range(s.num_views):
        cam = s.points_xyz @ s.world_to_camera[v, :3, :3].T + s.world_to_camera[v, :3, 3]
        uv = cam @ s.intrinsics[v].T
        z = cam[:, 2]
        u, w = np.floor(uv[:, 0] / z).astype(int), np.floor(uv[:, 1] / z).astype(int)
        inside = (z > 0) & (u >= 0) & (u < s.width) & (w >= 0) & (w < s.height)
        depth = np.full(len(z), np.inf)
        depth[inside] = s.depth[v, w[inside], u[inside]]
        seen |= inside & (np.abs(depth - z) < 0.03)
    assert 0.05 < (~seen).mean() < 0.99, "part of the cloud is hidden from every view"
    assert (s.points_semantic[s.points_instance == 1] == -1).all(), "the ceiling has no class"


def test_export_in_the_scannet_layout_reads_back(tmp_path):
    cfg = SyntheticConfig(seed=1, difficulty="hard", trajectory="walk", cloud="surface", num_views=4, width=24,
                          height=18, num_points=1500)
    folder = export(cfg, tmp_path, "scene0901_00")
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    expected = {"intrinsic/intrinsic_color.txt", "intrinsic/intrinsic_depth.txt", "scene0901_00_vh_clean_2.labels.ply",
                f"scene0901_00{MESH_SUFFIX}", "scene0901_00.aggregation.json",
                "scene0901_00_vh_clean_2.0.010000.segs.json"}
    expected |= {f"{d}/{i}.{e}" for i in range(4) for d, e in (("color", "jpg"), ("depth", "png"), ("pose", "txt"),
                                                              ("label-filt", "png"), ("instance-filt", "png"))}
    assert expected <= names
    scan = read_scene("scannet", folder, test_every=4)
    truth = make_scene(cfg)
    assert scan.num_views == 4 and np.allclose(scan.points_xyz, truth.points_xyz)
    np.testing.assert_array_equal(scan.points_semantic, truth.points_semantic)
    np.testing.assert_array_equal(scan.gt_semantic, truth.gt_semantic)
    assert len(np.unique(scan.points_instance[scan.points_instance >= 0])) >= 25


def test_scan_cloud_keeps_points_a_view_sees_and_drops_those_behind_a_picture():
    K = np.array([[10.0, 0, 4], [0, 10, 3], [0, 0, 1]])
    w2c = np.eye(4)[None]
    w2c[0, 1, 3] = -1.3  # camera at (0, 1.3, 0) looking at the z+ wall (z = 3.5)
    picture = SceneObject("picture", (Box((0.0, 1.3, 3.485), (0.3, 0.2, 0.015)),), Footprint(0.0, 3.485, 0.3, 0.015, 0))
    points = np.array([[1.0, 1.3, 3.5],  # the wall beside the picture
                       [0.1, 1.3, 3.5],  # the wall behind the picture, 3 cm behind its front
                       [0.1, 1.35, 3.5],  # the picture's back face
                       [0.1, 1.3, 3.47],  # the picture's front face
                       [-3.4, 1.3, 0.5],  # outside the image
                       [0.0, 1.3, -2.0]])  # behind the camera
    seen = seen_by_any_view(points, w2c, K, 8, 6, [picture], torch.device("cpu"))
    assert seen.tolist() == [True, False, False, True, False, False]
    w2c_side = w2c.copy()
    w2c_side[0, 0, 3] = -0.1  # a second view does not uncover what the picture covers from every side
    assert seen_by_any_view(points, np.concatenate([w2c, w2c_side]), K, 8, 6, [picture],
                            torch.device("cpu")).tolist() == seen.tolist()


def test_scan_cloud_holds_every_instance_a_frame_shows_and_nothing_unseen():
    s = make_scene(SyntheticConfig(seed=1, difficulty="hard", trajectory="walk", cloud="scan", num_views=8, width=32,
                                   height=24, num_points=3000))
    assert set(np.unique(s.gt_instance)) == set(np.unique(s.points_instance)), "even objects too small to be sampled"
    objects = hard_objects(np.random.default_rng([1, LAYOUT_STREAM]))
    assert seen_by_any_view(s.points_xyz, s.world_to_camera, s.intrinsics[0], 32, 24, objects,
                            torch.device("cpu")).all()
    assert len(s.points_xyz) < 3000, "surfaces no frame sees are left out"
