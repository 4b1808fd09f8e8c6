"""ScanNet reader with its ground truth: a scan written in the published layout (``write_scannet_scan``) comes back
exactly; each malformed file is an error naming it (and its partner file where there is one); every reader's
pixel-centre convention puts a known 3D point on the right pixel."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_readers import (
    ANGLE_X,
    COLMAP_K,
    IDR_K,
    LLFF_FULL,
    SCANNET_K,
    H,
    W,
    assert_bad,
    look_at,
    write_colmap,
    write_idr,
    write_llff,
    write_nerf,
    write_scannet,
)

from stages.lib.readers import read_scene
from stages.lib.readers.images import invert_rigid, project
from stages.lib.readers.scannet_layout import scannet19_to_nyu40, write_scannet_scan
from stages.lib.scene import SceneData, SceneError
from stages.lib.semantic_metrics import SCANNET19

V, SH, SW = 6, 12, 16
SCAN = "scene0042_01"


def ground_truth_scene(seed: int = 0) -> SceneData:
    """A small scene with every ground-truth array (random contents, rigid cameras on a circle)."""
    rng = np.random.default_rng(seed)
    w2c = np.stack([look_at([3 * math.cos(a), 3 * math.sin(a), 1.0]) for a in np.linspace(0, 2, V)])
    K = np.array([[14.0, 0, 8.25], [0, 14.5, 5.75], [0, 0, 1]])
    points_instance = rng.integers(-1, 5, 300).astype(np.int32)
    return SceneData(
        images=rng.integers(0, 256, (V, SH, SW, 3), dtype=np.uint8), intrinsics=np.repeat(K[None], V, 0),
        world_to_camera=w2c, is_test=np.arange(V) % 3 == 0,
        points_xyz=rng.normal(size=(300, 3)).astype(np.float32),
        points_rgb=rng.integers(0, 256, (300, 3), dtype=np.uint8), image_names=[str(i) for i in range(V)],
        categories=list(SCANNET19), depth=rng.uniform(0.5, 4.0, (V, SH, SW)).astype(np.float32),
        gt_semantic=rng.integers(-1, 19, (V, SH, SW)).astype(np.int32),
        gt_instance=rng.integers(-1, 5, (V, SH, SW)).astype(np.int32),
        points_semantic=np.where(points_instance >= 0, points_instance * 3 % 19, -1).astype(np.int32),
        points_instance=points_instance,
    )


@pytest.fixture(scope="module")
def truth() -> SceneData:
    return ground_truth_scene()


@pytest.fixture
def scan(tmp_path, truth) -> Path:
    return write_scannet_scan(truth, tmp_path, SCAN)


def read(root: Path, **kw) -> SceneData:
    return read_scene("scannet", root, test_every=3, **kw)


# ----------------------------------------------------------------------------------------------
# Layout and round trip
# ----------------------------------------------------------------------------------------------
def test_fixture_is_in_the_published_layout(scan):
    names = {p.relative_to(scan).as_posix() for p in scan.rglob("*") if p.is_file()}
    for i in range(V):
        assert {f"color/{i}.jpg", f"depth/{i}.png", f"pose/{i}.txt", f"label-filt/{i}.png",
                f"instance-filt/{i}.png"} <= names
    assert {f"intrinsic/{n}_{s}.txt" for n in ("intrinsic", "extrinsic") for s in ("color", "depth")} <= names
    assert {f"{SCAN}_vh_clean_2.labels.ply", f"{SCAN}.aggregation.json", f"{SCAN}_vh_clean_2.0.010000.segs.json"} <= names
    assert Image.open(scan / "color/0.jpg").format == "JPEG"
    assert Image.open(scan / "depth/0.png").mode == "I;16"
    assert Image.open(scan / "label-filt/0.png").mode == "L" and Image.open(scan / "instance-filt/0.png").mode == "L"
    agg = json.loads((scan / f"{SCAN}.aggregation.json").read_text())
    assert {"objectId", "label", "segments", "id"} <= set(agg["segGroups"][0])
    assert "segIndices" in json.loads((scan / f"{SCAN}_vh_clean_2.0.010000.segs.json").read_text())
    assert np.loadtxt(scan / "pose/1.txt").shape == (4, 4)
    # ScanNet's intrinsics put pixel centres on integer coordinates: the file's principal point is ours - 0.5
    np.testing.assert_allclose(np.loadtxt(scan / "intrinsic/intrinsic_color.txt")[:2, 2], [7.75, 5.25])


def test_round_trip_with_ground_truth(scan, truth, tmp_path):
    scene = read(scan)
    out = tmp_path / "out" / "scene.zarr"
    scene.write(out, stage="ingest", params={}, dataset="scannet", scene=SCAN, reader="scannet")
    from stages.lib.scene import load_scene

    loaded = load_scene(out)
    np.testing.assert_allclose(loaded.intrinsics, truth.intrinsics, atol=1e-6)
    np.testing.assert_allclose(loaded.world_to_camera, truth.world_to_camera, atol=1e-5)  # poses written with %f
    jpgs = np.stack([np.asarray(Image.open(scan / f"color/{i}.jpg").convert("RGB")) for i in range(V)])
    np.testing.assert_array_equal(loaded.images, jpgs)
    np.testing.assert_allclose(loaded.depth, np.rint(truth.depth * 1000) / 1000, atol=1e-6)
    np.testing.assert_array_equal(loaded.gt_semantic, truth.gt_semantic)
    np.testing.assert_array_equal(loaded.gt_instance, truth.gt_instance)
    np.testing.assert_array_equal(loaded.points_xyz, truth.points_xyz)
    np.testing.assert_array_equal(loaded.points_semantic, truth.points_semantic)
    np.testing.assert_array_equal(loaded.points_instance, truth.points_instance)
    assert loaded.is_test.tolist() == truth.is_test.tolist() and loaded.categories == SCANNET19
    assert scene.extra_attrs["instance_labels"]["1"] == SCANNET19[3]


def test_optional_ground_truth_and_downscale(scan, truth):
    for name in ("label-filt", "instance-filt", "depth"):
        for p in (scan / name).iterdir():
            p.unlink()
        (scan / name).rmdir()
    (scan / f"{SCAN}.aggregation.json").unlink()
    scene = read(scan, downscale=2)
    assert scene.gt_semantic is None and scene.gt_instance is None and scene.depth is None
    assert scene.points_instance is None and scene.points_semantic is not None
    assert scene.images.shape == (V, SH // 2, SW // 2, 3)
    np.testing.assert_allclose(scene.intrinsics[0, :2], truth.intrinsics[0, :2] / 2, atol=1e-6)


def test_downscaled_labels_are_nearest(scan, truth):
    scene = read(scan, downscale=2)
    np.testing.assert_array_equal(scene.gt_instance, truth.gt_instance[:, 1::2, 1::2])
    np.testing.assert_array_equal(scene.gt_semantic, truth.gt_semantic[:, 1::2, 1::2])


def test_lost_tracking_frames_are_skipped(tmp_path, truth):
    root = write_scannet_scan(truth, tmp_path, SCAN, lost_tracking=[2])
    with pytest.warns(UserWarning, match=r"lost tracking.*\[2\]"):
        scene = read(root)
    assert scene.extra_attrs["frame_ids"] == [0, 1, 3, 4, 5]
    np.testing.assert_array_equal(scene.gt_instance, truth.gt_instance[[0, 1, 3, 4, 5]])


def test_raw_scannet_label_ids_through_the_label_map(scan, truth, tmp_path):
    # raw label-filt images hold ScanNet label ids (16-bit); the release's tsv maps them to NYU40 ids
    tsv = tmp_path / "scannetv2-labels.combined.tsv"
    rows = ["id\traw_category\tcategory\tcount\tnyu40id\tnyu40class"]
    rows += [f"{1000 + n}\tc{n}\tc{n}\t1\t{n}\tc{n}" for n in range(1, 41)]
    tsv.write_text("\n".join(rows) + "\n")
    for i in range(V):
        nyu = np.asarray(Image.open(scan / f"label-filt/{i}.png")).astype(np.uint16)
        Image.fromarray(np.where(nyu > 0, nyu + 1000, 0).astype(np.uint16)).save(scan / f"label-filt/{i}.png")
    with pytest.raises(SceneError, match=r"label-filt/0.png.*label_map"):
        read(scan)
    np.testing.assert_array_equal(read(scan, label_map=str(tsv)).gt_semantic, truth.gt_semantic)
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join(lines[:5] + lines[6:]) + "\n")  # drop the row of one id that the images use
    with pytest.raises(SceneError, match=r"label-filt/\d+.png: label id\(s\) \[1005\]"):
        read(scan, label_map=str(tsv))


def test_nyu40_mapping_inverts():
    labels = np.arange(-1, 19)
    from stages.lib.readers.scannet import nyu40_to_scannet19

    np.testing.assert_array_equal(nyu40_to_scannet19(scannet19_to_nyu40(labels)), labels)
    assert scannet19_to_nyu40(np.array([-1, 0, 12, 18])).tolist() == [0, 1, 14, 36]  # unannotated, wall, desk, bathtub


# ----------------------------------------------------------------------------------------------
# Bad input: one error naming the file (and its partner), nothing written
# ----------------------------------------------------------------------------------------------
def _json_edit(path: Path, edit) -> None:
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def _unknown_segment(scan: Path) -> None:
    _json_edit(scan / f"{SCAN}.aggregation.json", lambda d: d["segGroups"][1]["segments"].append(99999))


def _no_segments(scan: Path) -> None:
    _json_edit(scan / f"{SCAN}.aggregation.json", lambda d: d["segGroups"][0].update(segments=[]))


def _segs_of_other_mesh(scan: Path) -> None:
    _json_edit(scan / f"{SCAN}_vh_clean_2.0.010000.segs.json", lambda d: d.update(segIndices=d["segIndices"][:-3]))


def _label_size(scan: Path) -> None:
    Image.fromarray(np.zeros((SH + 2, SW), np.uint8)).save(scan / "label-filt/3.png")


def _instance_size(scan: Path) -> None:
    Image.fromarray(np.zeros((SH, SW - 4), np.uint8)).save(scan / "instance-filt/4.png")


def _png_named_jpg(scan: Path) -> None:
    Image.open(scan / "color/2.jpg").save(scan / "color/2.jpg", format="PNG")


def _rgb_label(scan: Path) -> None:
    Image.new("RGB", (SW, SH)).save(scan / "label-filt/1.png")


def _depth_8bit(scan: Path) -> None:
    Image.fromarray(np.full((SH, SW), 200, np.uint8)).save(scan / "depth/5.png")


def _instance_16bit(scan: Path) -> None:
    Image.fromarray(np.full((SH, SW), 3001, np.uint16)).save(scan / "instance-filt/0.png")


def _instance_without_object(scan: Path) -> None:
    Image.fromarray(np.full((SH, SW), 77, np.uint8)).save(scan / "instance-filt/2.png")


def _aggregation_not_json(scan: Path) -> None:
    (scan / f"{SCAN}.aggregation.json").write_text("segGroups: none")


def _aggregation_without_segs(scan: Path) -> None:
    (scan / f"{SCAN}_vh_clean_2.0.010000.segs.json").unlink()


def _pose_without_colour(scan: Path) -> None:
    (scan / "color/3.jpg").unlink()


def _colour_without_pose(scan: Path) -> None:
    (scan / "pose/4.txt").unlink()


def _colour_without_depth(scan: Path) -> None:
    (scan / "depth/1.png").unlink()


def _nan_pose(scan: Path) -> None:
    pose = np.loadtxt(scan / "pose/2.txt")
    pose[0, 3] = np.nan
    np.savetxt(scan / "pose/2.txt", pose)


def _plus_inf_pose(scan: Path) -> None:
    np.savetxt(scan / "pose/2.txt", np.full((4, 4), np.inf))


def _stray_file(scan: Path) -> None:
    (scan / "color/frame_a.jpg").write_bytes((scan / "color/0.jpg").read_bytes())


def _intrinsics_of_another_size(scan: Path) -> None:
    k = np.loadtxt(scan / "intrinsic/intrinsic_color.txt")
    k[:2, 2] *= 4
    np.savetxt(scan / "intrinsic/intrinsic_color.txt", k)


SCANNET_BAD = {  # case: (break the scan, text the error must contain)
    "segment id not in segs": (_unknown_segment, [f"{SCAN}.aggregation.json", "segGroups[1]", "99999"]),
    "object without segments": (_no_segments, [f"{SCAN}.aggregation.json", "segGroups[0]", "no segments"]),
    "segs of another mesh": (_segs_of_other_mesh, ["segs.json", "vertices"]),
    "label image size": (_label_size, ["label-filt/3.png", "color/3.jpg", "16x14"]),
    "instance image size": (_instance_size, ["instance-filt/4.png", "color/4.jpg"]),
    "png named .jpg": (_png_named_jpg, ["color/2.jpg", "PNG", "JPEG"]),
    "rgb label image": (_rgb_label, ["label-filt/1.png", "mode RGB"]),
    "8-bit depth": (_depth_8bit, ["depth/5.png", "16-bit", "mode L"]),
    "16-bit instance image": (_instance_16bit, ["instance-filt/0.png", "8-bit"]),
    "instance without object": (_instance_without_object, ["instance-filt/2.png", "77", "aggregation"]),
    "aggregation not json": (_aggregation_not_json, [f"{SCAN}.aggregation.json", "JSON"]),
    "aggregation without segs": (_aggregation_without_segs, [f"{SCAN}.aggregation.json", "segs.json"]),
    "pose without colour": (_pose_without_colour, ["pose/3.txt", "color/3.jpg"]),
    "colour without pose": (_colour_without_pose, ["color/4.jpg", "pose/4.txt"]),
    "colour without depth": (_colour_without_depth, ["depth/1.png", "color/1.jpg"]),
    "NaN in pose": (_nan_pose, ["pose/2.txt", "NaN"]),
    "+inf pose": (_plus_inf_pose, ["pose/2.txt", "-inf"]),
    "stray file in color/": (_stray_file, ["color/frame_a.jpg"]),
    "intrinsics of another size": (_intrinsics_of_another_size, ["intrinsic_color.txt", "outside"]),
}


@pytest.mark.parametrize("case", sorted(SCANNET_BAD))
def test_scannet_bad_input(case, scan, tmp_path):
    brk, expected = SCANNET_BAD[case]
    brk(scan)
    err = assert_bad(lambda: read(scan), tmp_path, *expected)
    assert "\n" not in str(err)


def test_implausible_depth_warns(scan):
    for i in (1, 4):
        Image.fromarray(np.full((SH, SW), 40, np.uint16)).save(scan / f"depth/{i}.png")  # 4 cm: not a room
    with pytest.warns(UserWarning, match=r"2 depth image\(s\).*1.png \(0.04 m\), 4.png"):
        read(scan)
    with pytest.warns(UserWarning, match="depth_scale"):
        read(scan, depth_scale=1.0)  # millimetres read as metres


# ----------------------------------------------------------------------------------------------
# Pixel-centre conventions: a known 3D point lands on the pixel the dataset's own convention says
# ----------------------------------------------------------------------------------------------
NERF_F = 0.5 * W / math.tan(0.5 * ANGLE_X)
CONVENTIONS = {  # reader: (fixture writer, intrinsics as the files hold them, the files' pixel-centre offset)
    "scannet": (lambda root: write_scannet(root, nan_frame=None), SCANNET_K, 0.0),  # integer centres
    "idr": (write_idr, IDR_K, 0.0),  # integer centres (IDR / NeuS cast rays through integer pixel coordinates)
    "colmap": (write_colmap, COLMAP_K, 0.5),  # COLMAP: centre of the top-left pixel at (0.5, 0.5)
    "llff": (write_llff, np.array([[LLFF_FULL[2] / 8, 0, W / 2], [0, LLFF_FULL[2] / 8, H / 2], [0, 0, 1]]), 0.5),
    "nerf_json": (write_nerf, np.array([[NERF_F, 0, W / 2], [0, NERF_F, H / 2], [0, 0, 1]]), 0.5),  # Blender
}


@pytest.mark.parametrize("reader", sorted(CONVENTIONS))
def test_known_point_projects_to_its_pixel(reader, tmp_path):
    writer, K, offset = CONVENTIONS[reader]
    w2c = writer(tmp_path / "scene")[0]
    options = {"num_random_points": 10} if reader != "scannet" else {}
    scene = read_scene(reader, tmp_path / "scene", **options)
    for u, v in ((0, 0), (W - 1, H - 1), (5, 7)):
        z = 2.5
        # the point that the dataset's own convention images at the centre of pixel (u, v) of its first view
        cam = np.array([(u + offset - K[0, 2]) / K[0, 0] * z, (v + offset - K[1, 2]) / K[1, 1] * z, z, 1.0])
        world = (invert_rigid(w2c[0]) @ cam)[:3]
        uv, depth = project(world[None], scene.intrinsics[0], scene.world_to_camera[0])
        np.testing.assert_allclose(uv[0], [u + 0.5, v + 0.5], atol=1e-3)  # our centre of pixel (u, v)
        assert np.floor(uv[0]).astype(int).tolist() == [u, v] and depth[0] == pytest.approx(z, rel=1e-5)
