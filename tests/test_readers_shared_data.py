"""Readers on the real scenes in ``../shared/data`` (lego / NeRF-json, fern / LLFF, DTU scan24 / IDR):
counts, sizes and splits from each dataset's SOURCE.md, plus geometric sanity checks of the poses.

Skipped when the data folder is absent (set ``OVGS_SHARED_DATA`` to point at another copy).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import map_coordinates, uniform_filter

from stages.lib.readers import read_scene
from stages.lib.readers.images import camera_centres, invert_rigid, project
from stages.lib.scene import load_scene

DATA = Path(os.environ.get("OVGS_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))
LEGO = DATA / "lego" / "data" / "nerf_synthetic" / "lego"
FERN = DATA / "fern" / "data" / "nerf_llff_data" / "fern"
DTU = DATA / "dtu_scan24" / "data" / "dtu_scan24"


def need(path: Path) -> Path:
    if not path.is_dir():
        pytest.skip(f"shared real data not found at {path} (set OVGS_SHARED_DATA to the shared/data folder)")
    return path


@pytest.fixture(scope="module")
def lego():
    return read_scene("nerf_json", need(LEGO), downscale=8, num_random_points=1000)


@pytest.fixture(scope="module")
def fern():
    return read_scene("llff", need(FERN), num_random_points=5000)


@pytest.fixture(scope="module")
def dtu():
    return read_scene("idr", need(DTU), downscale=8, num_random_points=5000)


def forward_axes(w2c: np.ndarray) -> np.ndarray:
    return w2c[:, 2, :3]  # camera +z (viewing direction) in world coordinates


# ----------------------------------------------------------------------------------------------
# lego (NeRF-synthetic): 100 train + 25 test, 800x800 RGBA over white, cameras on a sphere around the origin
# ----------------------------------------------------------------------------------------------
def test_lego_counts_split_and_images(lego):
    assert lego.num_views == 125 and int((~lego.is_test).sum()) == 100 and int(lego.is_test.sum()) == 25
    assert lego.images.shape == (125, 100, 100, 3)
    assert lego.image_names[0] == "train/r_0.png" and lego.image_names[100] == "test/r_0.png"
    assert lego.is_test[100:].all() and not lego.is_test[:100].any()
    # camera_angle_x = 0.6911112070083618 -> fx = 400 / tan(angle / 2) ~ 1111.1 px at 800 px, / 8 here
    np.testing.assert_allclose(lego.intrinsics[:, 0, 0], 400 / np.tan(0.6911112070083618 / 2) / 8, rtol=1e-6)
    np.testing.assert_allclose(lego.intrinsics[:, :2, 2], 50.0)
    assert lego.background == (1.0, 1.0, 1.0)
    frac = lego.foreground.mean(axis=(1, 2))
    assert 0.05 < frac.mean() < 0.6 and frac.min() > 0.01
    # white background: pixels well outside the object are white
    bg = ~lego.foreground
    assert lego.images[bg].mean() > 250


def test_lego_full_resolution(tmp_path):
    scene = read_scene("nerf_json", need(LEGO), max_views=2, num_random_points=10)
    assert scene.images.shape == (2, 800, 800, 3) and scene.is_test.tolist() == [False, True]
    np.testing.assert_allclose(scene.intrinsics[0, 0, 0], 1111.111, atol=0.01)
    out = tmp_path / "lego.zarr"
    scene.write(out, stage="ingest", params={}, dataset="nerf_synthetic", scene="lego", reader="nerf_json")
    back = load_scene(out)
    np.testing.assert_array_equal(back.images, scene.images)
    np.testing.assert_array_equal(back.foreground, scene.foreground)


def test_lego_geometry(lego):
    centres = camera_centres(lego.world_to_camera)
    to_centre = -centres / np.linalg.norm(centres, axis=1, keepdims=True)
    fwd = forward_axes(lego.world_to_camera)
    assert (np.sum(fwd * to_centre, axis=1) > 0.99).all()  # every camera looks at the origin
    mean_ray = fwd.mean(axis=0)  # cameras on the upper hemisphere all around the object: on average
    assert np.linalg.norm(mean_ray[:2]) < 0.2 and mean_ray[2] < -0.3  # they look down at it
    assert np.sum(mean_ray * -centres.mean(axis=0)) > 0  # the mean viewing ray points to the centre
    # Blender world is z-up: image "down" (OpenCV +y) points downwards in the world for every camera
    assert (lego.world_to_camera[:, 1, 2] < 0).all()
    # the origin (object centre) projects near the image centre, in front, on the object
    for v in range(0, lego.num_views, 5):
        uv, z = project(np.zeros((1, 3)), lego.intrinsics[v], lego.world_to_camera[v])
        assert z[0] > 0 and np.abs(uv[0] - 50).max() < 5
        assert lego.foreground[v, int(uv[0, 1]), int(uv[0, 0])]


# ----------------------------------------------------------------------------------------------
# fern (LLFF): 20 views at 504x378, every 8th held out, bounds in [16.99, 80]
# ----------------------------------------------------------------------------------------------
def test_fern_counts_split_and_intrinsics(fern):
    assert fern.num_views == 20 and fern.images.shape == (20, 378, 504, 3)
    assert np.where(fern.is_test)[0].tolist() == [0, 8, 16]
    assert fern.image_names[0] == "image000.png" and fern.image_names[-1] == "image019.png"
    np.testing.assert_allclose(fern.intrinsics[:, 0, 0], 3260.52633 / 8, rtol=1e-5)
    np.testing.assert_allclose(fern.intrinsics[:, :2, 2], [[252.0, 189.0]] * 20)
    near_far = np.array(fern.extra_attrs["near_far"])
    assert near_far.shape == (20, 2) and near_far.min() > 16.9 and near_far.max() <= 80.01


def test_fern_geometry(fern):
    fwd = forward_axes(fern.world_to_camera)
    mean_ray = fwd.mean(axis=0) / np.linalg.norm(fwd.mean(axis=0))
    assert (fwd @ mean_ray > 0.95).all()  # forward-facing: all cameras look the same way
    centres = camera_centres(fern.world_to_camera)
    to_points = fern.points_xyz.mean(axis=0) - centres.mean(axis=0)
    assert to_points @ mean_ray / np.linalg.norm(to_points) > 0.9  # the scene lies ahead of the rig
    for v in range(fern.num_views):
        _, z = project(fern.points_xyz, fern.intrinsics[v], fern.world_to_camera[v])
        assert (z > 0).mean() > 0.99  # the frustum points are in front of every camera


def _sweep_cost(scene, a: int, b: int, w2c_b: np.ndarray, near_far: np.ndarray, steps: int = 40):
    """Plane sweep from view ``a`` into view ``b``: median over pixels of the best 7x7 mean absolute
    colour difference over depths, and the cost at the far end (nearly a pure rotation)."""
    img_a = scene.images[a].astype(np.float32) / 255
    img_b = scene.images[b].astype(np.float32) / 255
    h, w = img_a.shape[:2]
    Ka, Kb = scene.intrinsics[a], scene.intrinsics[b]
    v, u = np.mgrid[0:h, 0:w] + 0.5
    rays = np.stack([(u - Ka[0, 2]) / Ka[0, 0], (v - Ka[1, 2]) / Ka[1, 1], np.ones_like(u)], -1).reshape(-1, 3)
    c2w_a = invert_rigid(scene.world_to_camera[a])
    costs = []
    for inv_depth in np.linspace(1.2 / near_far[a, 0], 0.8 / near_far[a, 1], steps):
        world = (rays / inv_depth) @ c2w_a[:3, :3].T + c2w_a[:3, 3]
        cam = world @ w2c_b[:3, :3].T + w2c_b[:3, 3]
        ub = cam[:, 0] / cam[:, 2] * Kb[0, 0] + Kb[0, 2] - 0.5
        vb = cam[:, 1] / cam[:, 2] * Kb[1, 1] + Kb[1, 2] - 0.5
        warped = np.stack([map_coordinates(img_b[..., c], [vb, ub], order=1, mode="nearest") for c in range(3)], -1)
        err = np.abs(warped.reshape(h, w, 3) - img_a).mean(-1)
        err[~((ub >= 0) & (ub < w - 1) & (vb >= 0) & (vb < h - 1) & (cam[:, 2] > 0)).reshape(h, w)] = 1.0
        costs.append(uniform_filter(err, 7))
    costs = np.stack(costs)
    return float(np.median(costs.min(axis=0))), float(np.median(costs[-1]))


def test_fern_poses_are_photo_consistent(fern):
    """Neighbouring views agree once warped through the poses: the LLFF -> OpenCV axis conversion is right
    (a wrong axis order or sign roughly doubles the best matching cost)."""
    small = read_scene("llff", need(FERN), downscale=2, max_views=None, num_random_points=10)
    near_far = np.array(small.extra_attrs["near_far"])
    best, far = _sweep_cost(small, 1, 2, small.world_to_camera[2], near_far)
    assert best < 0.045 and best < 0.5 * far
    # the same check with the camera's forward axis flipped (an OpenGL/OpenCV mix-up) fails
    flip = np.diag([1.0, -1.0, -1.0, 1.0]) @ small.world_to_camera[2]
    wrong, _ = _sweep_cost(small, 1, 2, flip, near_far)
    assert wrong > 1.5 * best


# ----------------------------------------------------------------------------------------------
# DTU scan24 (IDR): 13 of 49 views (indices 0, 4, ..., 48), 1600x1200, masks thresholded at 127
# ----------------------------------------------------------------------------------------------
def test_dtu_counts_masks_and_split(dtu):
    assert dtu.num_views == 13 and dtu.images.shape == (13, 150, 200, 3)
    assert dtu.extra_attrs["camera_indices"] == list(range(0, 49, 4))
    assert dtu.image_names[1] == "000004.png"
    assert np.where(dtu.is_test)[0].tolist() == [0, 8]  # every 8th present view
    assert dtu.foreground is not None and dtu.foreground.shape == (13, 150, 200)
    assert 0.5 < dtu.foreground[0].mean() < 0.65  # SOURCE.md: about 57% in view 0
    K = dtu.intrinsics
    assert np.allclose(K[:, 2], [0, 0, 1]) and (K[:, 0, 0] > 0).all() and (K[:, 1, 1] > 0).all()
    assert np.abs(K[:, 0, 1]).max() < 1e-3 * K[:, 0, 0].min()  # no skew to speak of
    # 2929 px focal length at 1600x1200 (poses_bounds.npy of the same scene), / 8 here
    assert np.abs(K[:, 0, 0] * 8 / 2929.16 - 1).max() < 0.05


def test_dtu_geometry(dtu):
    centres = camera_centres(dtu.world_to_camera)
    assert (np.linalg.norm(centres, axis=1) > 1.0).all()  # cameras outside the unit sphere
    fwd = forward_axes(dtu.world_to_camera)
    to_centre = -centres / np.linalg.norm(centres, axis=1, keepdims=True)
    assert (np.sum(fwd * to_centre, axis=1) > 0.9).all()  # every camera looks at the object
    assert np.sum(fwd.mean(axis=0) * (-centres.mean(axis=0))) > 0  # mean viewing ray points to the centre
    for v in range(dtu.num_views):
        uv, z = project(np.zeros((1, 3)), dtu.intrinsics[v], dtu.world_to_camera[v])
        assert z[0] > 0 and 0 <= uv[0, 0] < 200 and 0 <= uv[0, 1] < 150
        assert dtu.foreground[v, int(uv[0, 1]), int(uv[0, 0])]  # the sphere centre lies on the object
        _, zp = project(dtu.points_xyz, dtu.intrinsics[v], dtu.world_to_camera[v])
        assert (zp > 0).all()  # the unit-sphere points are in front of every camera
