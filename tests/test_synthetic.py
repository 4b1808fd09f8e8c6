"""Synthetic scene generator: multi-view ground-truth consistency, determinism, content and knobs."""

import numpy as np
import pytest

from stages.lib.synthetic import SCANNET19, SyntheticConfig, make_scene
from stages.lib.synthetic.raycast import NUM_ROOM_SURFACES


@pytest.fixture(scope="module")
def scene():
    return make_scene(SyntheticConfig(seed=3, num_views=12, width=64, height=48))


def backproject(scene, i):
    K, w2c = scene.intrinsics[i].astype(np.float64), scene.world_to_camera[i].astype(np.float64)
    v, u = np.mgrid[: scene.height, : scene.width] + 0.5
    z = scene.depth[i].astype(np.float64)
    cam = np.stack([(u - K[0, 2]) / K[0, 0] * z, (v - K[1, 2]) / K[1, 1] * z, z], -1).reshape(-1, 3)
    return (cam - w2c[:3, 3]) @ w2c[:3, :3]  # R^T (x - t)


def project(scene, j, pts):
    K, w2c = scene.intrinsics[j].astype(np.float64), scene.world_to_camera[j].astype(np.float64)
    cam = pts @ w2c[:3, :3].T + w2c[:3, 3]
    uv = cam[:, :2] / cam[:, 2:3] * [K[0, 0], K[1, 1]] + K[:2, 2]
    return uv, cam[:, 2]


def test_backprojected_depth_agrees_with_other_views_instance_labels(scene):
    checked = 0
    for i, j in [(0, 1), (1, 3), (2, 4), (4, 5), (6, 7), (9, 11)]:
        pts = backproject(scene, i)
        uv, z = project(scene, j, pts)
        col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
        inside = (z > 0) & (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
        idx = np.where(inside)[0]
        depth_j = scene.depth[j][row[idx], col[idx]]
        covisible = idx[np.abs(depth_j - z[idx]) < 0.01 * z[idx]]
        labels_i = scene.gt_instance[i].reshape(-1)[covisible]
        labels_j = scene.gt_instance[j][row[covisible], col[covisible]]
        assert len(covisible) > 100, (i, j, len(covisible))
        assert (labels_i == labels_j).mean() >= 0.99, (i, j)
        checked += len(covisible)
    assert checked > 2000


def test_deterministic_and_seed_dependent():
    a = make_scene(SyntheticConfig(seed=5, num_views=4, width=32, height=24))
    b = make_scene(SyntheticConfig(seed=5, num_views=4, width=32, height=24))
    c = make_scene(SyntheticConfig(seed=6, num_views=4, width=32, height=24))
    np.testing.assert_array_equal(a.images, b.images)
    np.testing.assert_array_equal(a.points_xyz, b.points_xyz)
    assert not np.array_equal(a.gt_instance, c.gt_instance)


def test_content_instances_categories_and_occlusion(scene):
    cats = scene.extra_attrs["instance_categories"][NUM_ROOM_SURFACES:]
    assert len(cats) >= 8
    assert len(set(cats)) >= 5
    assert max(cats.count(c) for c in set(cats)) >= 2
    assert {SCANNET19[c] for c in cats} <= set(SCANNET19)
    # occlusion: some object is visible in some view but hidden (by another object) in another view that looks at it
    visible_counts = np.stack([np.bincount(scene.gt_instance[i].ravel(), minlength=30)[:30] for i in range(12)])
    furniture = visible_counts[:, NUM_ROOM_SURFACES:NUM_ROOM_SURFACES + len(cats)]
    assert (furniture > 0).sum(axis=1).min() >= 2, "every view sees several objects"
    assert (furniture == 0).any(), "some object is hidden in some view"
    assert (scene.depth > 0).all() and np.isfinite(scene.depth).all()
    # every pixel is labelled except the ceiling (not a ScanNet-19 class)
    unlabelled = scene.gt_semantic < 0
    assert (scene.gt_instance[unlabelled] == 1).all()


def test_knobs_change_outputs_as_asked():
    s = make_scene(SyntheticConfig(num_views=9, width=40, height=20, trajectory="forward", test_every=3, num_points=500))
    assert s.images.shape == (9, 20, 40, 3) and s.points_xyz.shape == (500, 3)
    assert s.is_test.tolist() == [i % 3 == 0 for i in range(9)]
    centres = np.linalg.inv(s.world_to_camera.astype(np.float64))[:, :3, 3]
    assert np.ptp(centres[:, 2]) < 0.01, "forward-facing cameras lie in one plane near a wall"
    with pytest.raises(ValueError, match="num_objects"):
        make_scene(SyntheticConfig(num_objects=5))
    with pytest.raises(ValueError, match="trajectory"):
        make_scene(SyntheticConfig(trajectory="spiral"))


def test_point_labels_match_the_maps_they_came_from(scene):
    train = np.where(~scene.is_test)[0]
    j = train[0]
    uv, z = project(scene, j, scene.points_xyz.astype(np.float64))
    col, row = np.floor(uv[:, 0]).astype(int), np.floor(uv[:, 1]).astype(int)
    inside = (z > 0) & (col >= 0) & (col < scene.width) & (row >= 0) & (row < scene.height)
    idx = np.where(inside)[0]
    vis = idx[np.abs(scene.depth[j][row[idx], col[idx]] - z[idx]) < 0.005 * z[idx]]
    assert len(vis) > 100
    agree = scene.points_instance[vis] == scene.gt_instance[j][row[vis], col[vis]]
    assert agree.mean() > 0.98
    np.testing.assert_array_equal(scene.points_semantic,
                                  np.array(scene.extra_attrs["instance_categories"])[scene.points_instance])
