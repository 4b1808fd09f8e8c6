"""The paper's ScanNet setting of ``train_gs`` (``fixed_points``): one Gaussian per scene point, centres untouched."""

import json

import numpy as np
import pytest

from stages import train_gs
from stages.lib.cli import run_stage
from stages.lib.gaussians import SH_C0
from stages.lib.scene import load_scene
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig, make_scene

# Densification that would grow and prune within 60 steps if it were on.
DENSIFY = {"refine_start_iter": 10, "refine_stop_iter": 50, "refine_every": 10, "grow_grad2d": 1e-6,
           "reset_every": 100000}


@pytest.fixture(scope="module")
def scene_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("fixed") / "scene.zarr"
    make_scene(SyntheticConfig(seed=3, num_views=8, width=32, height=24, num_points=600)).write(
        path, "ingest", {}, "synthetic", "fixed", "synthetic")
    return path


def train(scene_path, out, fixed: bool):
    params = {"iterations": 60, "sh_degree": 0, "checkpoint_every": 0, "fixed_points": fixed, "densify": DENSIFY}
    run_stage(train_gs.main, train_gs.parser(),
              ["--scene", str(scene_path), "--out", str(out), "--params", json.dumps(params)])
    return read_store("gaussians", out)


def test_fixed_points_keep_positions_bit_identical_and_one_gaussian_per_point(scene_path, tmp_path):
    points = load_scene(scene_path).points_xyz
    fixed = train(scene_path, tmp_path / "fixed.zarr", fixed=True)
    means = fixed.load("means")
    assert means.shape == points.shape
    assert np.array_equal(means.view(np.uint32), points.astype(np.float32).view(np.uint32))
    initial_sh0 = (points_rgb(scene_path) / 255.0 - 0.5) / SH_C0
    assert np.abs(fixed.load("sh0")[:, 0] - initial_sh0).max() > 1e-3, "the colours are still trained"
    free = train(scene_path, tmp_path / "free.zarr", fixed=False)
    moved = free.load("means")
    assert moved.shape != points.shape or not np.array_equal(moved, points), \
        "without fixed_points the same schedule moves or adds Gaussians"


def points_rgb(scene_path):
    return load_scene(scene_path).points_rgb.astype(np.float32)
