"""Synthetic scene generator: multi-view ground-truth consistency, determinism, content, knobs and point labels."""

import math

import numpy as np
import pytest
import torch
from scipy.ndimage import maximum_filter, minimum_filter

from stages.lib.synthetic import SCANNET19, SyntheticConfig, make_scene
from stages.lib.synthetic.layout import GAP, ROOM_HALF, ROOM_HEIGHT, place_objects
from stages.lib.synthetic.raycast import NUM_ROOM_SURFACES, cast, pixel_rays

ORBIT = SyntheticConfig(seed=3, num_views=12, width=64, height=48, test_every=4, num_points=4000)


@pytest.fixture(scope="module")
def scene():
    return make_scene(ORBIT)


@pytest.fixture(scope="module")
def forward():
    return make_scene(SyntheticConfig(seed=4, num_views=9, width=40, height=20, trajectory="forward", test_every=3,
                                      num_points=500))


def backproject(scene, i):
    K, w2c = scene.intrinsics[i].astype(np.float64), scene.world_to_camera[i].astype(np.float64)
    v, u = np.mgrid[: scene.height, : scene.width] + 0.5
    z = scene.depth[i].astype(np.float64)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).reshape(-1, 3)
    return (cam - w2c[:3, 3]) @ w2c[:3, :3]  # R^T (x - t)


def project(scene, j, pts):
    """Pixel (col, row), camera z and in-image mask of world points in view j."""
    K, w2c = scene.intrinsics[j].astype(np.float64), scene.world_to_camera[j].astype(np.float64)
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] * [K[0, 0], K[1, 1]] + K[:2, 2]
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (cam[:, 2] > 0) & (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
    return np.where(inside, col, 0), np.where(inside, row, 0), cam[:, 2], inside


def label_interior(labels):
    """Pixels whose 3x3 neighbourhood carries a single label (away from label boundaries)."""
    return (maximum_filter(labels, 3, mode="nearest") == minimum_filter(labels, 3, mode="nearest"))


@pytest.mark.parametrize("fixture", ["scene", "forward"])
def test_instance_labels_agree_across_views_where_depth_says_covisible(fixture, request):
    """Back-project view i's depth, project into view j; co-visible pixels (depth within 1%) carry the same instance.

    Over all pairs >= 99% agree; the few that do not sit on label boundaries where two surfaces meet with equal
    depth (room corners, feet on the floor), so away from boundaries every pair agrees exactly.
    """
    s = request.getfixturevalue(fixture)
    covisible_total = agree_total = furniture_total = 0
    for i in range(s.num_views):
        for j in ((i + 1) % s.num_views, (i + 2) % s.num_views):
            col, row, z, inside = project(s, j, backproject(s, i))
            covisible = inside & (np.abs(s.depth[j][row, col] - z) < 0.01 * z)
            same = s.gt_instance[i].reshape(-1) == s.gt_instance[j][row, col]
            interior_j = label_interior(s.gt_instance[j])[row, col]
            interior = covisible & label_interior(s.gt_instance[i]).reshape(-1) & interior_j
            assert interior.sum() > 50, (i, j, interior.sum())
            assert same[interior].all(), (i, j, (~same[interior]).sum())
            covisible_total += covisible.sum()
            agree_total += (covisible & same).sum()
            furniture_total += (covisible & (s.gt_instance[i].reshape(-1) >= NUM_ROOM_SURFACES)).sum()
    assert covisible_total > 0.2 * s.num_views * 2 * s.width * s.height
    assert agree_total / covisible_total >= 0.99, agree_total / covisible_total
    assert furniture_total > 0.1 * covisible_total, "furniture must be among the co-visible pixels"


def test_depth_is_exact_on_the_room_surfaces(scene):
    """Back-projected floor / ceiling / wall pixels lie on their planes (depth is the exact camera z)."""
    for i in range(scene.num_views):
        pts, inst = backproject(scene, i), scene.gt_instance[i].reshape(-1)
        planes = [(1, 0.0), (1, ROOM_HEIGHT), (0, -ROOM_HALF), (0, ROOM_HALF), (2, -ROOM_HALF), (2, ROOM_HALF)]
        for surface, (axis, value) in enumerate(planes):
            np.testing.assert_allclose(pts[inst == surface, axis], value, atol=2e-3)


def test_deterministic_seeded_and_streams_independent():
    cfg = dict(num_views=4, width=32, height=24, num_points=300)
    a, b = make_scene(SyntheticConfig(seed=5, **cfg)), make_scene(SyntheticConfig(seed=5, **cfg))
    for name in ("images", "depth", "gt_instance", "gt_semantic", "world_to_camera", "points_xyz", "points_rgb",
                 "points_instance", "points_semantic"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    c = make_scene(SyntheticConfig(seed=6, **cfg))
    assert (a.gt_instance != c.gt_instance).mean() > 0.1 and (a.images != c.images).any()
    fp = [(o.footprint.cx, o.footprint.cz) for o in place_objects(10, np.random.default_rng([5, 0]))]
    assert fp != [(o.footprint.cx, o.footprint.cz) for o in place_objects(10, np.random.default_rng([6, 0]))]
    # more views: the same room, colours and first pose (view 0 sits at angle 0 on the lower ring)
    d = make_scene(SyntheticConfig(seed=5, **{**cfg, "num_views": 8}))
    np.testing.assert_array_equal(a.images[0], d.images[0])


def test_content_instances_categories_and_partial_occlusion(scene):
    cats = scene.extra_attrs["instance_categories"]
    assert cats[:NUM_ROOM_SURFACES] == [SCANNET19.index("floor"), -1] + [SCANNET19.index("wall")] * 4
    furniture = cats[NUM_ROOM_SURFACES:]
    assert len(furniture) == ORBIT.num_objects >= 8
    assert len(set(furniture)) >= 5 and max(furniture.count(c) for c in furniture) >= 2
    seen = np.unique(scene.gt_instance)
    assert set(range(NUM_ROOM_SURFACES + len(furniture))) - {1} <= set(seen.tolist()), "every object is seen"
    objects = place_objects(ORBIT.num_objects, np.random.default_rng([ORBIT.seed, 0]))
    assert not any(a.footprint.overlaps(b.footprint, GAP) for k, a in enumerate(objects) for b in objects[k + 1:])
    # partial occlusion, from the ray caster: rays that hit object k when it is alone but another object in front
    partial = 0
    for i in range(0, scene.num_views, 3):
        o, d = pixel_rays(torch.from_numpy(scene.world_to_camera[i]), torch.from_numpy(scene.intrinsics[i]),
                          scene.width, scene.height)
        t_all, inst_all, _ = cast(o, d, objects)
        for k, obj in enumerate(objects):
            t_k, inst_k, _ = cast(o, d, [obj])
            alone = inst_k == NUM_ROOM_SURFACES
            hidden = alone & (inst_all >= NUM_ROOM_SURFACES) & (inst_all != NUM_ROOM_SURFACES + k) & (t_all < t_k)
            visible = inst_all == NUM_ROOM_SURFACES + k
            assert torch.equal(visible, alone & ~hidden), "the full render shows k exactly where nothing is in front"
            partial += int(hidden.any() and visible.any())
    assert partial >= 3


def test_every_pixel_hit_and_labelled_except_ceiling(scene, forward):
    for s in (scene, forward):
        assert np.isfinite(s.depth).all() and (s.depth > 0).all()
        cats = np.array(s.extra_attrs["instance_categories"])
        np.testing.assert_array_equal(s.gt_semantic, cats[s.gt_instance])
        assert ((s.gt_semantic >= 0) | (s.gt_instance == 1)).all() and (s.gt_semantic < len(SCANNET19)).all()
        assert s.images.dtype == np.uint8 and s.images.std() > 20, "textured, shaded images"
        assert s.categories == SCANNET19 and s.image_names[0] == "view_0000"


def test_knobs_change_shapes_intrinsics_split_and_poses(scene, forward):
    assert forward.images.shape == (9, 20, 40, 3) and forward.points_xyz.shape == (500, 3)
    assert forward.depth.shape == forward.gt_instance.shape == (9, 20, 40)
    assert forward.is_test.tolist() == [i % 3 == 0 for i in range(9)]
    np.testing.assert_allclose(forward.intrinsics[0], [[20 / math.tan(math.radians(30)), 0, 20],
                                                       [0, 20 / math.tan(math.radians(30)), 10], [0, 0, 1]], rtol=1e-6)
    assert forward.extra_attrs["synthetic_config"]["trajectory"] == "forward"
    # forward: parallel cameras on a grid in one plane near a wall, looking across the room (+z)
    c2w = np.linalg.inv(forward.world_to_camera.astype(np.float64))
    assert np.ptp(c2w[:, 2, 3]) < 1e-4 and np.ptp(c2w[:, 0, 3]) > 0.2 and np.ptp(c2w[:, 1, 3]) > 0.05
    np.testing.assert_allclose(forward.world_to_camera[:, :3, :3], forward.world_to_camera[:1, :3, :3].repeat(9, 0),
                               atol=1e-6)
    assert (c2w[:, 2, 2] > 0.8).all()
    # orbit: inside the room, elevated, tilted down, spread over 360 degrees
    c2w = np.linalg.inv(scene.world_to_camera.astype(np.float64))
    eye, look = c2w[:, :3, 3], c2w[:, :3, 2]
    assert (np.abs(eye[:, [0, 2]]) < ROOM_HALF).all() and (eye[:, 1] > 1.0).all() and (look[:, 1] < -0.1).all()
    angles = np.sort(np.arctan2(eye[:, 2], eye[:, 0]))
    assert np.diff(np.r_[angles, angles[0] + 2 * np.pi]).max() < np.pi / 4
    assert scene.images.shape == (12, 48, 64, 3) and scene.is_test.sum() == 3
    more = make_scene(SyntheticConfig(num_objects=13, num_views=2, width=16, height=12, test_every=2, num_points=50))
    assert len(more.extra_attrs["instance_categories"]) == NUM_ROOM_SURFACES + 13
    with pytest.raises(ValueError, match="num_objects"):
        make_scene(SyntheticConfig(num_objects=5))
    with pytest.raises(ValueError, match="trajectory"):
        make_scene(SyntheticConfig(trajectory="spiral"))


def test_point_cloud_lies_on_train_surfaces_with_their_labels(scene):
    assert scene.points_xyz.shape == (ORBIT.num_points, 3) and scene.points_xyz.dtype == np.float32
    np.testing.assert_array_equal(scene.points_semantic,
                                  np.array(scene.extra_attrs["instance_categories"])[scene.points_instance])
    checked = 0
    for j in np.where(~scene.is_test)[0][:4]:
        col, row, z, inside = project(scene, j, scene.points_xyz.astype(np.float64))
        vis = inside & (np.abs(scene.depth[j][row, col] - z) < 0.005 * z)
        agree = scene.points_instance[vis] == scene.gt_instance[j][row[vis], col[vis]]
        assert vis.sum() > 100 and agree.mean() > 0.98, (j, vis.sum(), agree.mean())
        rgb_err = np.abs(scene.points_rgb[vis].astype(int) - scene.images[j][row[vis], col[vis]].astype(int))
        assert np.median(rgb_err) <= 12
        checked += vis.sum()
    assert checked > 0.5 * ORBIT.num_points
