"""SAS's fusion on scenes without depth (Sec. 3.1, ``stages.methods.sas.points``): the RGB Gaussians' centres are the
points and their rendered depth is the occlusion test's; the 3D protocol labels the scan's points by their nearest
Gaussian; a scene with neither depth nor Gaussians stops with a clear error."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from oracle_stores import tiny_scene

from stages import capability, evaluate_semantic
from stages.lib.cli import run_stage
from stages.lib.gaussians import init_from_points, save_gaussians
from stages.lib.scene import SceneData
from stages.lib.semantic_metrics import NEAREST_GAUSSIAN, SCAN_POINTS
from stages.lib.store import read_store
from stages.methods.sas.evaluation import model_point_features
from stages.methods.sas.points import GAUSSIANS, fusion_points

GAUSSIAN_ATTRS = {"sh_degree": 0, "background": [0.0, 0.0, 0.0], "iterations": 0}
MODELS = [{"name": "a", "confuse": {"chair": 1.0, "bed": 0.25}, "into": {"chair": "sofa", "bed": "desk"}},
          {"name": "b", "confuse": {"table": 0.5}, "into": {"table": "desk"}}]


def write_gaussians(path, xyz: np.ndarray, scale: float | None = None, opacity: float = 0.99) -> None:
    """Opaque Gaussians at ``xyz``: isotropic ``scale`` (default 3DGS's nearest-neighbour initialisation)."""
    params = init_from_points(xyz, np.zeros_like(xyz, dtype=np.uint8), sh_degree=0, init_opacity=opacity)
    if scale is not None:
        params["scales"] = torch.full_like(params["scales"], float(np.log(scale)))
    save_gaussians(path, params, "test", {}, {}, GAUSSIAN_ATTRS)


class ViewClass:
    """A 2D model predicting one class per view: class ``view`` on the whole image."""

    name, reads_pixels = "per_view", True

    def classify(self, image, vocabulary):
        return np.full(image.rgb.shape[:2], image.key, np.int64)


def test_rendered_depth_occludes_the_point_behind_a_nearer_gaussian(tmp_path):
    # Pinhole f = 10, principal point 5 on a 10 x 10 image; pixel centres at integer + 0.5. Point A (depth 2) and
    # point B (depth 4) lie on the ray of pixel (5, 5) of view 0; view 1 (camera moved by -0.8 in x) puts A on pixel
    # column 1 and B on column 3, so it sees both.
    a, b = np.array([0.1, 0.1, 2.0]), np.array([0.2, 0.2, 4.0])
    k = np.array([[10.0, 0, 5], [0, 10.0, 5], [0, 0, 1]])
    poses = np.stack([np.eye(4)] * 3)
    poses[1, 0, 3] = -0.8
    points = np.stack([a, b]).astype(np.float32)
    scene = SceneData(images=np.zeros((3, 10, 10, 3), np.uint8), intrinsics=np.stack([k] * 3),
                      world_to_camera=poses, is_test=np.array([False, False, True]), points_xyz=points,
                      points_rgb=np.zeros((2, 3), np.uint8), image_names=["v0", "v1", "t"], categories=["x", "y"])
    scene.write(tmp_path / "scene.zarr", "test", {}, dataset="synthetic", scene="hand", reader="synthetic")
    write_gaussians(tmp_path / "gaussians.zarr", points, scale=0.05)
    store = read_store("scene", tmp_path / "scene.zarr")
    fused = fusion_points(store, tmp_path / "gaussians.zarr")
    assert fused.source == GAUSSIANS and np.allclose(fused.xyz, points)
    depth0, depth1 = fused.depth(0), fused.depth(1)
    assert abs(depth0[5, 5] - 2.0) < 0.1  # A's depth: B, behind the nearly opaque A, hardly shows
    assert abs(depth1[5, 1] - 2.0) < 0.1 and abs(depth1[5, 3] - 4.0) < 0.1
    assert depth0[0, 0] == 0.0  # no Gaussian there: no depth
    text = np.eye(2)
    (feats,), seen = model_point_features(store, [ViewClass()], ["x", "y"], text, 0.25, fused)
    assert seen.tolist() == [True, True]
    np.testing.assert_allclose(feats[0], [0.5, 0.5])  # A: class 0 from view 0 and class 1 from view 1
    np.testing.assert_allclose(feats[1], [0.0, 1.0])  # B: occluded in view 0, so only view 1's class


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """The tiny scene with and without its depth, its oracle capability store and opaque Gaussians of 5 cm isotropic
    scale at its points instead of trained ones (shuffled and moved by 1 mm, so the 3D protocol takes each scan
    point's nearest Gaussian)."""
    root = tmp_path_factory.mktemp("sas_gaussians")
    scene = tiny_scene()
    paths = {"depth": root / "scene.zarr", "no_depth": root / "scene_no_depth.zarr",
             "capability": root / "capability.zarr", "gaussians": root / "gaussians.zarr"}
    scene.write(paths["depth"], "test", {}, dataset="synthetic", scene="tiny", reader="synthetic")
    replace(scene, depth=None).write(paths["no_depth"], "test", {}, dataset="synthetic", scene="tiny",
                                     reader="synthetic")
    order = np.random.default_rng(0).permutation(len(scene.points_xyz))
    write_gaussians(paths["gaussians"], scene.points_xyz[order] + 1e-3, scale=0.05)
    params = {"source": "oracle", "models": MODELS, "options": {"images_per_class": 8, "width": 24, "height": 16}}
    run_stage(capability.main, capability.parser(), ["--scene", str(paths["depth"]), "--out",
                                                     str(paths["capability"]), "--params", json.dumps(params),
                                                     "--device", "cpu"])
    return paths


def evaluate(paths, scene: str, out, gaussians: bool) -> dict:
    args = ["--scene", str(paths[scene]), "--capability", str(paths["capability"]), "--out", str(out / "m.zarr"),
            "--table", str(out / "m.csv"), "--params", json.dumps({"evaluation": "sas"}), "--device", "cpu"]
    run_stage(evaluate_semantic.main, evaluate_semantic.parser(),
              args + (["--gaussians", str(paths["gaussians"])] if gaussians else []))
    return read_store("semantic_metrics", out / "m.zarr").attrs


def test_gaussian_points_with_rendered_depth_match_the_depth_run(stores, tmp_path):
    (tmp_path / "d").mkdir(), (tmp_path / "g").mkdir()
    with_depth = evaluate(stores, "depth", tmp_path / "d", gaussians=False)
    rendered = evaluate(stores, "no_depth", tmp_path / "g", gaussians=True)
    assert with_depth["points_protocol"] == SCAN_POINTS and rendered["points_protocol"] == NEAREST_GAUSSIAN
    # measured: 0.930 with rendered depth against 0.969 with sensor depth (the untrained splats of points a few cm
    # from a camera cover part of its view; 3DGS's training would shrink them)
    assert abs(rendered["miou_3d"] - with_depth["miou_3d"]) <= 0.05, (rendered["miou_3d"], with_depth["miou_3d"])
    assert rendered["miou_3d"] > 0.5


def test_no_depth_and_no_gaussians_is_a_clear_error(stores, tmp_path):
    with pytest.raises(SystemExit) as stop:
        evaluate(stores, "no_depth", tmp_path, gaussians=False)
    message = str(stop.value.code)
    assert str(stores["no_depth"]) in message and "'depth'" in message and "no Gaussians were given" in message
    assert not (tmp_path / "m.zarr").exists()


def test_distill_on_gaussian_centres_and_its_evaluation(stores, tmp_path):
    """Without depth the network is distilled on the Gaussian centres (graph superpoints over them) and its
    evaluation labels the scan's points by their nearest Gaussian; without the Gaussians it stops."""
    from stages import distill

    out = tmp_path / "distilled.zarr"
    schedule = {"epochs": 3, "tesd_epochs": 1, "voxel_size": 0.2, "width": 0.25, "graph": {"neighbours": 6}}
    base = ["--scene", str(stores["no_depth"]), "--capability", str(stores["capability"]), "--out", str(out),
            "--params", json.dumps(schedule), "--device", "cpu"]
    run_stage(distill.main, distill.parser(), [*base, "--gaussians", str(stores["gaussians"])])
    distilled = read_store("distilled_points", out)
    means = read_store("gaussians", stores["gaussians"]).load("means")
    assert distilled.attrs["points_source"] == GAUSSIANS and distilled.attrs["superpoint_source"].startswith("graph")
    assert distilled.load("point_features").shape[0] == len(means)
    run = ["--scene", str(stores["no_depth"]), "--distilled", str(out), "--out", str(tmp_path / "m.zarr"),
           "--table", str(tmp_path / "m.csv"), "--params", json.dumps({"evaluation": "sas_distilled"}),
           "--device", "cpu"]
    with pytest.raises(SystemExit, match="gaussians"):
        run_stage(evaluate_semantic.main, evaluate_semantic.parser(), run)
    run_stage(evaluate_semantic.main, evaluate_semantic.parser(), [*run, "--gaussians", str(stores["gaussians"])])
    assert read_store("semantic_metrics", tmp_path / "m.zarr").attrs["points_protocol"] == NEAREST_GAUSSIAN
