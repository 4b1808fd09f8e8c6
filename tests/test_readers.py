"""Dataset readers: tiny fixtures written here for every format, round-tripped through the ``scene`` store
(poses, intrinsics, images and split must come back exactly), plus bad-input errors naming the file."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stages.lib.readers import READERS, read_scene, reader_options
from stages.lib.readers.images import (
    downscale_area,
    downscale_nearest,
    integer_centres_to_ours,
    load_image,
    ours_to_integer_centres,
    resize_scene,
    select_views,
)
from stages.lib.scene import SceneData, SceneError, load_scene
from stages.lib.semantic_metrics import SCANNET19
from stages.lib.store import read_store

W, H = 16, 12


# ----------------------------------------------------------------------------------------------
# Shared fixture helpers
# ----------------------------------------------------------------------------------------------
def look_at(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV world-to-camera (x right, y down, z forward) of a camera at ``eye`` looking at ``target``."""
    eye, target, up = (np.asarray(x, np.float64) for x in (eye, target, up))
    fwd = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(fwd, up)
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    w2c = np.eye(4)
    w2c[:3, :3] = np.stack([right, down, fwd])
    w2c[:3, 3] = -w2c[:3, :3] @ eye
    return w2c


def orbit(n: int, radius: float = 4.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        a = 2 * math.pi * i / n
        eye = [radius * math.cos(a), radius * math.sin(a), 1.0 + 0.5 * math.sin(2 * a)]
        out.append(look_at(eye, rng.uniform(-0.2, 0.2, 3)))
    return np.stack(out)


def inv(m: np.ndarray) -> np.ndarray:
    return np.linalg.inv(m)


def random_images(n: int, seed: int, channels: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, H, W, channels), dtype=np.uint8)


def save(path: Path, arr: np.ndarray, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, **kw)


def round_trip(scene: SceneData, tmp_path: Path, reader: str) -> SceneData:
    out = tmp_path / "out" / "scene.zarr"
    scene.write(out, stage="ingest", params={}, dataset="d", scene="s", reader=reader)
    assert sorted(p.name for p in out.parent.iterdir()) == ["scene.zarr"]
    return load_scene(out)


def assert_cameras(loaded: SceneData, w2c: np.ndarray, K: np.ndarray, atol: float = 1e-5) -> None:
    np.testing.assert_allclose(loaded.world_to_camera, w2c, atol=atol)
    np.testing.assert_allclose(loaded.intrinsics, np.broadcast_to(K, loaded.intrinsics.shape), atol=atol * 10)


def assert_bad(read, tmp_path: Path, *names: str) -> SceneError:
    """``read()`` followed by a write attempt raises SceneError naming ``names`` and leaves nothing behind."""
    out = tmp_path / "bad" / "scene.zarr"
    with pytest.raises(SceneError) as info:
        read().write(out, stage="ingest", params={}, dataset="d", scene="s", reader="x")
    for name in names:
        assert name in str(info.value), (name, str(info.value))
    assert not out.exists()
    assert not list(tmp_path.rglob("*.partial-*"))
    return info.value


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ----------------------------------------------------------------------------------------------
# COLMAP
# ----------------------------------------------------------------------------------------------
COLMAP_K = np.array([[20.0, 0, 8.0], [0, 21.0, 6.0], [0, 0, 1]])


def write_colmap(root: Path, n: int = 10, model: str = "PINHOLE", params=None, num_points: int = 40):
    import pycolmap

    w2c, images = orbit(n, seed=1), random_images(n, seed=2)
    rec = pycolmap.Reconstruction()
    cam = pycolmap.Camera.create_from_model_name(1, model, 20.0, W, H)
    cam.params = params if params is not None else [20.0, 21.0, 8.0, 6.0]
    rec.add_camera_with_trivial_rig(cam)
    names = [f"img_{i:02d}.png" for i in range(n)]
    for k, i in enumerate(np.random.default_rng(3).permutation(n)):  # ids not in name order
        img = pycolmap.Image(name=names[i], camera_id=1, image_id=int(k) + 1)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(w2c[i, :3, :3]), w2c[i, :3, 3])
        rec.add_image_with_trivial_frame(img, pose)
        save(root / "images" / names[i], images[i])
    rng = np.random.default_rng(4)
    xyz, rgb = rng.normal(size=(num_points, 3)), rng.integers(0, 256, (num_points, 3), dtype=np.uint8)
    for p, c in zip(xyz, rgb):
        rec.add_point3D(p, pycolmap.Track(), c)
    (root / "sparse" / "0").mkdir(parents=True)
    rec.write(str(root / "sparse" / "0"))
    return w2c, images, names, xyz, rgb


def test_colmap_round_trip(tmp_path):
    w2c, images, names, xyz, rgb = write_colmap(tmp_path / "scene")
    scene = read_scene("colmap", tmp_path / "scene", test_every=4)
    loaded = round_trip(scene, tmp_path, "colmap")
    assert loaded.image_names == names
    assert_cameras(loaded, w2c, COLMAP_K)
    np.testing.assert_array_equal(loaded.images, images)
    assert loaded.is_test.tolist() == [i % 4 == 0 for i in range(10)]
    order = np.lexsort(loaded.points_xyz.T)
    np.testing.assert_allclose(loaded.points_xyz[order], xyz[np.lexsort(xyz.T)], atol=1e-6)
    np.testing.assert_array_equal(loaded.points_rgb[order], rgb[np.lexsort(xyz.T)])
    assert not loaded.random_point_colours  # measured points: their colours are kept by init_color: auto


def test_colmap_radial_without_distortion_and_downscale(tmp_path):
    w2c, images, *_ = write_colmap(tmp_path / "scene", model="SIMPLE_RADIAL", params=[20.0, 8.0, 6.0, 0.0])
    scene = read_scene("colmap", tmp_path / "scene", downscale=2)
    K = np.array([[10.0, 0, 4.0], [0, 10.0, 3.0], [0, 0, 1]])
    assert_cameras(round_trip(scene, tmp_path, "colmap"), w2c, K)
    expected = np.rint(images.astype(np.float64).reshape(10, 6, 2, 8, 2, 3).mean(axis=(2, 4)))
    assert np.abs(scene.images.astype(int) - expected).max() <= 1


def test_colmap_distorted_camera_is_refused(tmp_path):
    write_colmap(tmp_path / "scene", model="SIMPLE_RADIAL", params=[20.0, 8.0, 6.0, 0.1])
    err = assert_bad(lambda: read_scene("colmap", tmp_path / "scene"), tmp_path, "cameras.bin")
    assert "image_undistorter" in str(err)


def test_colmap_nan_intrinsics(tmp_path):
    write_colmap(tmp_path / "scene", params=[20.0, float("nan"), 8.0, 6.0])
    assert_bad(lambda: read_scene("colmap", tmp_path / "scene"), tmp_path, "cameras.bin", "NaN")


def test_colmap_missing_image(tmp_path):
    write_colmap(tmp_path / "scene")
    (tmp_path / "scene" / "images" / "img_03.png").unlink()
    assert_bad(lambda: read_scene("colmap", tmp_path / "scene"), tmp_path, "img_03.png", "does not exist")


def test_colmap_truncated_png(tmp_path):
    write_colmap(tmp_path / "scene")
    truncate(tmp_path / "scene" / "images" / "img_05.png")
    assert_bad(lambda: read_scene("colmap", tmp_path / "scene"), tmp_path, "img_05.png", "truncated")


# ----------------------------------------------------------------------------------------------
# NeRF-synthetic transforms json
# ----------------------------------------------------------------------------------------------
GL_TO_CV = np.diag([1.0, -1.0, -1.0, 1.0])
ANGLE_X = 0.9


def write_nerf(root: Path, n_train: int = 6, n_test: int = 3, ext: str = ""):
    w2c = orbit(n_train + n_test, seed=5)
    rgba = random_images(n_train + n_test, seed=6, channels=4)
    rgba[:, :4, :, 3] = 0  # some fully transparent rows, some opaque, the rest random alpha
    rgba[:, -3:, :, 3] = 255
    splits = {"train": range(n_train), "test": range(n_train, n_train + n_test)}
    for split, idx in splits.items():
        frames = []
        for k, i in enumerate(idx):
            c2w_gl = inv(w2c[i]) @ GL_TO_CV  # OpenCV camera-to-world -> OpenGL axes
            frames.append({"file_path": f"./{split}/r_{k}{ext}", "rotation": 0.0, "transform_matrix": c2w_gl.tolist()})
            save(root / split / f"r_{k}.png", rgba[i])
        (root / f"transforms_{split}.json").write_text(json.dumps({"camera_angle_x": ANGLE_X, "frames": frames}))
    return w2c, rgba


def nerf_expected(rgba: np.ndarray, bg=(1.0, 1.0, 1.0)) -> np.ndarray:
    a = rgba[..., 3:4] / 255.0
    return np.rint(rgba[..., :3] * a + 255.0 * np.asarray(bg) * (1 - a)).astype(np.uint8)


def test_nerf_json_round_trip(tmp_path):
    w2c, rgba = write_nerf(tmp_path / "lego")
    scene = read_scene("nerf_json", tmp_path / "lego", num_random_points=500)
    loaded = round_trip(scene, tmp_path, "nerf_json")
    f = 0.5 * W / math.tan(0.5 * ANGLE_X)
    assert_cameras(loaded, w2c, np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]))
    assert np.abs(loaded.images.astype(int) - nerf_expected(rgba)).max() <= 1
    np.testing.assert_array_equal(loaded.foreground, rgba[..., 3] > 127)
    assert loaded.is_test.tolist() == [False] * 6 + [True] * 3
    assert loaded.image_names[0] == "train/r_0.png" and loaded.image_names[6] == "test/r_0.png"
    assert loaded.background == (1.0, 1.0, 1.0)
    assert loaded.points_xyz.shape == (500, 3) and np.abs(loaded.points_xyz).max() <= 1.3
    assert loaded.random_point_colours  # the random cube, recorded in the scene store
    again = read_scene("nerf_json", tmp_path / "lego", num_random_points=500)
    np.testing.assert_array_equal(again.points_xyz, scene.points_xyz)  # seeded


def test_nerf_json_background_downscale_and_extension(tmp_path):
    w2c, rgba = write_nerf(tmp_path / "lego", ext=".png")
    scene = read_scene("nerf_json", tmp_path / "lego", background=(0, 0, 0), downscale=2, num_random_points=10)
    full = nerf_expected(rgba, (0, 0, 0)).astype(np.float64)
    expected = full.reshape(9, 6, 2, 8, 2, 3).mean(axis=(2, 4))
    assert scene.images.shape == (9, 6, 8, 3) and np.abs(scene.images - expected).max() <= 1.01
    alpha = (rgba[..., 3] / 255.0).reshape(9, 6, 2, 8, 2).mean(axis=(2, 4))
    assert (scene.foreground == (alpha > 0.5))[np.abs(alpha - 0.5) > 0.01].all()
    f = 0.5 * W / math.tan(0.5 * ANGLE_X) / 2
    np.testing.assert_allclose(scene.intrinsics[0], [[f, 0, 4], [0, f, 3], [0, 0, 1]], atol=1e-9)


def test_nerf_json_frame_without_image(tmp_path):
    write_nerf(tmp_path / "lego")
    (tmp_path / "lego" / "test" / "r_1.png").unlink()
    assert_bad(lambda: read_scene("nerf_json", tmp_path / "lego"), tmp_path, "transforms_test.json", "./test/r_1")


def test_nerf_json_truncated_png(tmp_path):
    write_nerf(tmp_path / "lego")
    truncate(tmp_path / "lego" / "train" / "r_2.png")
    assert_bad(lambda: read_scene("nerf_json", tmp_path / "lego"), tmp_path, "r_2.png", "truncated")


def test_nerf_json_non_rigid_pose(tmp_path):
    write_nerf(tmp_path / "lego")
    jpath = tmp_path / "lego" / "transforms_train.json"
    meta = json.loads(jpath.read_text())
    m = np.array(meta["frames"][3]["transform_matrix"])
    m[:3, :3] *= 1.5
    meta["frames"][3]["transform_matrix"] = m.tolist()
    jpath.write_text(json.dumps(meta))
    assert_bad(lambda: read_scene("nerf_json", tmp_path / "lego"), tmp_path, "transforms_train.json", "rigid")


def test_nerf_json_nan_intrinsics(tmp_path):
    write_nerf(tmp_path / "lego")
    jpath = tmp_path / "lego" / "transforms_test.json"
    meta = json.loads(jpath.read_text())
    meta["camera_angle_x"] = float("nan")
    jpath.write_text(json.dumps(meta))  # json writes NaN, Python's json reads it back
    assert_bad(lambda: read_scene("nerf_json", tmp_path / "lego"), tmp_path, "transforms_test.json", "NaN")


# ----------------------------------------------------------------------------------------------
# ScanNet
# ----------------------------------------------------------------------------------------------
SCANNET_K = np.array([[18.0, 0, 8.0], [0, 18.0, 6.0], [0, 0, 1]])
NYU_LABELS = np.array([0, 1, 2, 3, 14, 16, 24, 28, 33, 34, 36, 39, 40, 13, 5])
SCANNET_EXPECTED = np.array([-1, 0, 1, 2, 12, 13, 14, 15, 16, 17, 18, -1, -1, -1, 4])


def write_scannet(root: Path, n: int = 9, nan_frame: int | None = 3):
    from plyfile import PlyData, PlyElement

    w2c, images = orbit(n, seed=7), random_images(n, seed=8)
    depth_mm = np.random.default_rng(9).integers(0, 5000, (n, H // 2, W // 2)).astype(np.uint16)
    for i in range(n):
        save(root / "color" / f"{i}.jpg", images[i], quality=95)
        save(root / "depth" / f"{i}.png", depth_mm[i])
        pose = inv(w2c[i])
        if i == nan_frame:
            pose = np.full((4, 4), -np.inf)
        (root / "pose").mkdir(exist_ok=True)
        np.savetxt(root / "pose" / f"{i}.txt", pose)
    (root / "intrinsic").mkdir()
    kc, kd = np.eye(4), np.eye(4)
    kc[:3, :3] = SCANNET_K
    # depth sensor at half resolution, same field of view: halving holds in our convention (pixel centres at +0.5);
    # ScanNet's files put pixel centres on integer coordinates
    kd[:3, :3] = ours_to_integer_centres(np.diag([0.5, 0.5, 1.0]) @ integer_centres_to_ours(SCANNET_K))
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", kc)
    np.savetxt(root / "intrinsic" / "intrinsic_depth.txt", kd)
    rng = np.random.default_rng(10)
    m = len(NYU_LABELS)
    vert = np.zeros(m, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4"), ("red", "u1"), ("green", "u1"), ("blue", "u1"),
                              ("alpha", "u1"), ("label", "u2")])
    xyz, rgb = rng.normal(size=(m, 3)).astype(np.float32), rng.integers(0, 256, (m, 3), dtype=np.uint8)
    for k, name in enumerate(("x", "y", "z")):
        vert[name] = xyz[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vert[name] = rgb[:, k]
    vert["alpha"], vert["label"] = 255, NYU_LABELS
    face = np.zeros(1, dtype=[("vertex_indices", "i4", (3,))])
    face["vertex_indices"][0] = [0, 1, 2]
    PlyData([PlyElement.describe(vert, "vertex"), PlyElement.describe(face, "face")]).write(
        str(root / "scene0000_00_vh_clean_2.labels.ply"))
    return w2c, depth_mm, xyz, rgb


def test_scannet_round_trip(tmp_path):
    root = tmp_path / "scene0000_00"
    w2c, depth_mm, xyz, rgb = write_scannet(root)
    with pytest.warns(UserWarning, match="lost tracking"):
        scene = read_scene("scannet", root, test_every=4)
    loaded = round_trip(scene, tmp_path, "scannet")
    kept = [0, 1, 2, 4, 5, 6, 7, 8]
    assert loaded.image_names == [f"color/{i}.jpg" for i in kept]
    assert_cameras(loaded, w2c[kept], integer_centres_to_ours(SCANNET_K))
    jpgs = np.stack([np.asarray(Image.open(root / "color" / f"{i}.jpg").convert("RGB")) for i in kept])
    np.testing.assert_array_equal(loaded.images, jpgs)
    expected_depth = np.repeat(np.repeat(depth_mm[kept], 2, axis=1), 2, axis=2) / 1000.0  # nearest upsampling
    np.testing.assert_allclose(loaded.depth, expected_depth, atol=1e-6)
    assert loaded.is_test.tolist() == [i % 4 == 0 for i in range(8)]
    np.testing.assert_allclose(loaded.points_xyz, xyz)
    np.testing.assert_array_equal(loaded.points_rgb, rgb)
    np.testing.assert_array_equal(loaded.points_semantic, SCANNET_EXPECTED)
    assert loaded.categories == SCANNET19 and SCANNET19[12] == "desk" and SCANNET19[18] == "bathtub"


def test_scannet_frame_step_and_downscale(tmp_path):
    root = tmp_path / "scan"
    w2c, depth_mm, *_ = write_scannet(root, nan_frame=None)
    scene = read_scene("scannet", root, frame_step=2, test_every=2, downscale=2)
    assert scene.image_names == [f"color/{i}.jpg" for i in (0, 2, 4, 6, 8)]
    np.testing.assert_allclose(scene.intrinsics[0], np.diag([0.5, 0.5, 1]) @ integer_centres_to_ours(SCANNET_K))
    np.testing.assert_allclose(scene.depth, depth_mm[::2] / 1000.0, atol=1e-6)  # colour/2 == depth grid
    assert scene.images.shape == (5, H // 2, W // 2, 3)


def test_scannet_non_rigid_pose(tmp_path):
    root = tmp_path / "scan"
    write_scannet(root, nan_frame=None)
    pose = np.loadtxt(root / "pose" / "2.txt")
    pose[:3, :3] *= 0.5
    np.savetxt(root / "pose" / "2.txt", pose)
    assert_bad(lambda: read_scene("scannet", root), tmp_path, str(Path("pose") / "2.txt"), "rigid")


def test_scannet_nan_intrinsics(tmp_path):
    root = tmp_path / "scan"
    write_scannet(root, nan_frame=None)
    k = np.loadtxt(root / "intrinsic" / "intrinsic_color.txt")
    k[0, 2] = np.nan
    np.savetxt(root / "intrinsic" / "intrinsic_color.txt", k)
    assert_bad(lambda: read_scene("scannet", root), tmp_path, "intrinsic_color.txt", "NaN")


def test_scannet_truncated_depth(tmp_path):
    root = tmp_path / "scan"
    write_scannet(root, nan_frame=None)
    truncate(root / "depth" / "5.png")
    assert_bad(lambda: read_scene("scannet", root), tmp_path, str(Path("depth") / "5.png"))


# ----------------------------------------------------------------------------------------------
# LLFF
# ----------------------------------------------------------------------------------------------
LLFF_FULL = (96.0, 128.0, 120.0)  # H, W, f at full resolution; images_8 holds 12 x 16


def write_llff(root: Path, n: int = 10):
    rng = np.random.default_rng(11)
    # forward-facing: cameras on a small grid at z=-4 looking toward +z
    w2c = np.stack([look_at([0.3 * (i % 4), 0.2 * (i // 4), -4.0], [0.0, 0.0, 0.0], up=[0, -1, 0]) for i in range(n)])
    images = random_images(n, seed=12)
    rows = []
    for i in range(n):
        c2w = inv(w2c[i])
        # LLFF column order: [down, right, backwards] axes of the camera, then the position, then (H, W, f)
        mat = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], np.array(LLFF_FULL)], axis=1)
        near = rng.uniform(1.0, 2.0)
        rows.append(np.concatenate([mat.ravel(), [near, near + rng.uniform(4.0, 8.0)]]))
        save(root / "images_8" / f"IMG_{i:04d}.png", images[i])
    np.save(root / "poses_bounds.npy", np.array(rows))
    return w2c, images, np.array(rows)[:, 15:]


def test_llff_round_trip(tmp_path):
    w2c, images, bounds = write_llff(tmp_path / "fern")
    scene = read_scene("llff", tmp_path / "fern", num_random_points=2000)
    out = tmp_path / "out.zarr"
    scene.write(out, stage="ingest", params={}, dataset="d", scene="s", reader="llff")
    loaded = load_scene(out)
    f = LLFF_FULL[2] / 8
    assert_cameras(loaded, w2c, np.array([[f, 0, W / 2], [0, f, H / 2], [0, 0, 1]]))
    np.testing.assert_array_equal(loaded.images, images)
    assert loaded.is_test.tolist() == [i % 8 == 0 for i in range(10)]
    np.testing.assert_allclose(read_store("scene", out).attrs["near_far"], bounds)
    # every point lies in a training view's frustum between that view's bounds
    pts = loaded.points_xyz.astype(np.float64)
    inside = np.zeros(len(pts), bool)
    for v in np.where(~loaded.is_test)[0]:
        cam = pts @ w2c[v, :3, :3].T + w2c[v, :3, 3]
        uv = cam[:, :2] / cam[:, 2:] * f + [W / 2, H / 2]
        inside |= ((cam[:, 2] >= bounds[v, 0] * 0.999) & (cam[:, 2] <= bounds[v, 1] * 1.001) & (uv >= -1e-3).all(1)
                   & (uv[:, 0] <= W + 1e-3) & (uv[:, 1] <= H + 1e-3))
    assert inside.all()


def test_llff_count_mismatch(tmp_path):
    write_llff(tmp_path / "fern")
    (tmp_path / "fern" / "images_8" / "IMG_0004.png").unlink()
    assert_bad(lambda: read_scene("llff", tmp_path / "fern"), tmp_path, "poses_bounds.npy", "images_8")


def test_llff_wrong_factor_folder(tmp_path):
    write_llff(tmp_path / "fern")
    assert_bad(lambda: read_scene("llff", tmp_path / "fern", factor=4), tmp_path, "images_4", "images_8")


def test_llff_nan_intrinsics_and_non_rigid_pose(tmp_path):
    write_llff(tmp_path / "fern")
    pb_path = tmp_path / "fern" / "poses_bounds.npy"
    good = np.load(pb_path)
    bad = good.copy()
    bad[3, 14] = np.nan  # focal length of row 3
    np.save(pb_path, bad)
    assert_bad(lambda: read_scene("llff", tmp_path / "fern"), tmp_path, "poses_bounds.npy", "IMG_0003.png")
    bad = good.copy()
    bad[5, 0] *= 3.0  # rotation entry
    np.save(pb_path, bad)
    assert_bad(lambda: read_scene("llff", tmp_path / "fern"), tmp_path, "poses_bounds.npy", "rigid")


# ----------------------------------------------------------------------------------------------
# IDR / NeuS
# ----------------------------------------------------------------------------------------------
IDR_K = np.array([[22.0, 0, 7.5], [0, 23.0, 6.5], [0, 0, 1]])
IDR_PRESENT = [0, 2, 4, 5, 7]


def write_idr(root: Path, n: int = 8):
    w2c = orbit(n, radius=3.0, seed=13)  # in the normalised (unit sphere) frame
    scale, centre = 2.5, np.array([10.0, -3.0, 40.0])
    S = np.eye(4)
    S[:3, :3] *= scale
    S[:3, 3] = centre
    cams = {}
    for i in range(n):
        # world_mat maps original-world points: P_world = K [R|t]_norm S^-1, times an arbitrary scale
        P = np.eye(4)
        P[:3, :4] = 3.7 * IDR_K @ (w2c[i] @ inv(S))[:3, :4]
        cams[f"world_mat_{i}"], cams[f"scale_mat_{i}"] = P, S
        cams[f"world_mat_inv_{i}"], cams[f"scale_mat_inv_{i}"] = inv(P), inv(S)
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "cameras_sphere.npz", **cams)
    images = random_images(n, seed=14)
    masks = np.random.default_rng(15).choice(np.array([0, 100, 200, 255], np.uint8), (n, H, W))
    for i in IDR_PRESENT:
        save(root / "image" / f"{i:06d}.png", images[i])
        save(root / "mask" / f"{i:03d}.png", np.repeat(masks[i][..., None], 3, axis=2))
    return w2c, images, masks


def test_idr_round_trip(tmp_path):
    root = tmp_path / "dtu"
    w2c, images, masks = write_idr(root)
    scene = read_scene("idr", root, test_every=3, num_random_points=1000)
    loaded = round_trip(scene, tmp_path, "idr")
    assert loaded.image_names == [f"{i:06d}.png" for i in IDR_PRESENT]
    assert_cameras(loaded, w2c[IDR_PRESENT], integer_centres_to_ours(IDR_K))
    np.testing.assert_array_equal(loaded.images, images[IDR_PRESENT])
    np.testing.assert_array_equal(loaded.foreground, masks[IDR_PRESENT] > 127)
    assert loaded.is_test.tolist() == [True, False, False, True, False]
    assert np.linalg.norm(loaded.points_xyz, axis=1).max() <= 1.0 + 1e-6


def test_idr_missing_camera_and_mask(tmp_path):
    root = tmp_path / "dtu"
    write_idr(root)
    save(root / "image" / "000009.png", random_images(1, seed=0)[0])
    assert_bad(lambda: read_scene("idr", root), tmp_path, "cameras_sphere.npz", "world_mat_9", "000009.png")
    (root / "image" / "000009.png").unlink()
    (root / "mask" / "004.png").unlink()
    assert_bad(lambda: read_scene("idr", root), tmp_path, "mask", "000004.png")


def test_idr_nan_in_projection(tmp_path):
    root = tmp_path / "dtu"
    write_idr(root)
    cams = dict(np.load(root / "cameras_sphere.npz"))
    cams["world_mat_5"][0, 0] = np.nan
    np.savez(root / "cameras_sphere.npz", **cams)
    assert_bad(lambda: read_scene("idr", root), tmp_path, "cameras_sphere.npz", "world_mat_5", "NaN")


def test_idr_truncated_mask(tmp_path):
    root = tmp_path / "dtu"
    write_idr(root)
    truncate(root / "mask" / "007.png")
    assert_bad(lambda: read_scene("idr", root), tmp_path, "007.png")


# ----------------------------------------------------------------------------------------------
# Dispatcher, shared helpers, validation at write time
# ----------------------------------------------------------------------------------------------
def test_registry_and_dispatch(tmp_path):
    assert {"colmap", "nerf_json", "scannet", "llff", "idr", "lerf_ovs", "3dovs", "lerf_mask"} <= set(READERS)
    for name in READERS:
        assert {"downscale", "max_views"} <= set(reader_options(name))
    with pytest.raises(ValueError, match="colmap.*idr.*llff.*nerf_json.*scannet"):
        read_scene("blender", tmp_path)
    with pytest.raises(ValueError, match="unknown option"):
        read_scene("llff", tmp_path, factr=8)


def test_max_views_keeps_both_splits(tmp_path):
    write_llff(tmp_path / "fern", n=10)
    scene = read_scene("llff", tmp_path / "fern", max_views=4, num_random_points=10)
    assert scene.num_views == 4 and scene.is_test.any() and not scene.is_test.all()
    assert scene.image_names[0] == "IMG_0000.png"
    keep = select_views(np.arange(100) % 8 == 0, 10)
    assert len(keep) == 10 and (keep % 8 == 0).sum() == 1
    np.testing.assert_array_equal(select_views(np.arange(5) == 0, None), np.arange(5))


def test_write_refuses_bad_cameras_and_leaves_nothing(tmp_path):
    w2c, *_ = write_colmap(tmp_path / "scene")
    scene = read_scene("colmap", tmp_path / "scene")
    scene.intrinsics[2, 0, 0] = np.nan
    assert_bad(lambda: scene, tmp_path, "img_02.png", "NaN")
    scene = read_scene("colmap", tmp_path / "scene")
    scene.world_to_camera[1, :3, :3] *= 2.0
    assert_bad(lambda: scene, tmp_path, "img_01.png", "rigid")


def test_image_helpers(tmp_path):
    rgb = random_images(1, seed=20)[0]
    save(tmp_path / "a.png", rgb)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png"), rgb)
    save(tmp_path / "g.png", rgb[..., 0])  # greyscale -> RGB
    assert load_image(tmp_path / "g.png").shape == (H, W, 3)
    with pytest.raises(SceneError, match="nothere.png"):
        load_image(tmp_path / "nothere.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(SceneError, match="junk.png"):
        load_image(tmp_path / "junk.png")
    # a PNG cut just before its IEND chunk decodes fine in PIL but is still truncated
    data = (tmp_path / "a.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[:-12])
    with pytest.raises(SceneError, match="cut.png"):
        load_image(tmp_path / "cut.png")
    x = np.arange(7 * 9, dtype=np.float32).reshape(7, 9)
    np.testing.assert_allclose(downscale_area(x, 3), x[:6].reshape(2, 3, 3, 3).mean(axis=(1, 3)))
    np.testing.assert_array_equal(downscale_nearest(x, 3), x[1:6:3, 1:9:3])
    np.testing.assert_array_equal(downscale_area(rgb, 4),
                                  np.floor(rgb.reshape(3, 4, 4, 4, 3).mean(axis=(1, 3)) + 0.5).astype(np.uint8))
    np.testing.assert_array_equal(downscale_area(rgb.astype(np.uint16), 4), downscale_area(rgb, 4))  # numpy path


def test_resize_scene(tmp_path):
    write_idr(tmp_path / "dtu")
    scene = read_scene("idr", tmp_path / "dtu", num_random_points=50)
    small = resize_scene(scene, 2)
    assert small.images.shape == (5, 6, 8, 3) and small.foreground.shape == (5, 6, 8)
    np.testing.assert_allclose(small.intrinsics[:, :2], scene.intrinsics[:, :2] / 2)
    np.testing.assert_array_equal(small.foreground, scene.foreground[:, 1::2, 1::2])
    direct = read_scene("idr", tmp_path / "dtu", num_random_points=50, downscale=2)
    np.testing.assert_array_equal(direct.images, small.images)
    np.testing.assert_allclose(direct.intrinsics, small.intrinsics)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small.validate()


def test_colmap_model_without_points_falls_back_to_random_points(tmp_path):
    write_colmap(tmp_path / "scene", num_points=0)
    with pytest.warns(UserWarning, match="no 3D points; using 300 random points around the cameras"):
        scene = read_scene("colmap", tmp_path / "scene", num_random_points=300)
    assert scene.points_xyz.shape == (300, 3) and scene.random_point_colours
    assert round_trip(scene, tmp_path, "colmap").random_point_colours
