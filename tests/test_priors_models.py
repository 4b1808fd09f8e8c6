"""The prior stages with real model architectures: a missing or wrong checkpoint stops them before any work, and
with random weights (tiny configurations) every stage runs through the DAG. Random-weight outputs only check the
plumbing; they are never results."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml
from workflow_runner import REPO, snakemake

from stages.lib.mask_store import load_masks
from stages.lib.models.clip_features import build_clip
from stages.lib.models.sam_masks import build_sam
from stages.lib.store import read_store
from stages.lib.synthetic import SyntheticConfig, make_scene

STAGES = {
    "masks": (["--scene"], {"source": "sam", "sam": {"model": "sam_vit_h"}}, "sam_vit_h"),
    "track": (["--scene", "--masks"], {"source": "sam2", "sam2": {"model": "sam2.1_hiera_large"}}, "sam2.1_hiera_large"),
    "features": (["--scene", "--masks"], {"source": "clip", "clip": {"model": "clip_convnext_base"}},
                 "clip_convnext_base"),
}


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("stores")
    make_scene(SyntheticConfig(num_views=2, width=16, height=12, num_points=200, test_every=2)).write(
        d / "scene.zarr", "ingest", {}, "synthetic", "t", "synthetic")
    run_stage("masks", ["--scene", str(d / "scene.zarr"), "--out", str(d / "masks.zarr"), "--params", "{}"])
    return d


def run_stage(stage, args):
    return subprocess.run([sys.executable, "-m", f"stages.{stage}", *args], cwd=REPO, capture_output=True, text=True)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_missing_checkpoint_stops_before_work(stage, stores, tmp_path):
    flags, params, model = STAGES[stage]
    args = [a for f in flags for a in (f, str(stores / ("scene.zarr" if f == "--scene" else "masks.zarr")))]
    out = tmp_path / "out.zarr"
    proc = run_stage(stage, [*args, "--out", str(out), "--weights-dir", str(tmp_path / "weights"),
                             "--params", json.dumps(params)])
    assert proc.returncode != 0
    assert f"python -m stages.weights fetch {model}" in proc.stderr and "https://" in proc.stderr, proc.stderr[-2000:]
    assert not out.exists() and not list(tmp_path.glob("out.zarr.partial-*"))


def test_wrong_checkpoint_hash_names_the_expected_hash(stores, tmp_path):
    from stages.lib.weights import load_registry

    spec = load_registry()["sam_vit_h"]
    fake = tmp_path / "weights" / spec.filename
    fake.parent.mkdir(parents=True)
    fake.write_bytes(b"not a checkpoint")
    out = tmp_path / "out.zarr"
    proc = run_stage("masks", ["--scene", str(stores / "scene.zarr"), "--out", str(out), "--weights-dir",
                               str(tmp_path / "weights"), "--params", '{"source": "sam"}'])
    assert proc.returncode != 0 and spec.sha256 in proc.stderr and str(fake) in proc.stderr, proc.stderr[-2000:]
    assert not out.exists()


def test_random_weight_models_run_through_the_dag(tmp_path):
    config = yaml.safe_load((REPO / "tests/config/tiny.yaml").read_text())
    scene = config["scenes"][0]
    config["scenes"] = [dict(scene, options=dict(scene["options"], num_views=2, test_every=2, width=32, height=24,
                                                  num_points=300))]
    config["run_methods"] = ["3dgs"]
    config["stages"].update({
        "masks": {"variants": {"sam_random": {
            "source": "sam", "levels": {"subpart+part": ["subpart", "part"], "whole+part": ["whole", "part"]},
            "sam": {"model": "sam_vit_b", "random_weights": True, "tiny": True, "points_per_side": 2,
                    "pred_iou_thresh": 0,
                    "stability_score_thresh": 0},
            "filter": {"min_predicted_iou": 0, "min_stability": 0}}}},
        "track": {"variants": {"sam2_random": {"after": {"masks": "sam_random"}, "source": "sam2",
                                               "sam2": {"model": "sam2.1_hiera_tiny", "random_weights": True,
                                                        "image_size": 128}}}},
        "features": {"variants": {"clip_random": {"after": {"masks": "sam_random"}, "source": "clip", "alpha": 0.4,
                                                  "clip": {"model": "clip_vit_b16_laion2b", "random_weights": True,
                                                           "tiny": True}}}},
    })
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    results = tmp_path / "results"
    base = results / "synthetic/tiny_room"
    snakemake(results, str(base / "track/sam2_random.zarr"), str(base / "features/clip_random.zarr"),
              configfile=path)
    masks = load_masks(base / "masks/sam_random.zarr")
    assert masks.attrs["source"] == "sam" and masks.attrs["random_weights"] is True and masks.num_masks > 0
    tracks = read_store("tracks", base / "track/sam2_random.zarr")
    assert tracks.sizes["M"] == masks.num_masks
    feats = read_store("features", base / "features/clip_random.zarr")
    assert feats.sizes["M"] == masks.num_masks and feats.attrs["random_weights"] is True
    f = feats.load("mask_features").astype(np.float32)
    assert np.allclose(np.linalg.norm(f, axis=1), 1, atol=2e-3)


def test_random_weight_models_are_the_same_in_every_build_and_leave_the_caller_rng_alone():
    """Random-weight SAM / CLIP come from a fixed seed (deterministic tests) without moving the global generator."""
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = build_sam("vit_b", None, "cpu", random_weights=True, tiny=True).state_dict()
    second = build_sam("vit_b", None, "cpu", random_weights=True, tiny=True).state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    a = build_clip("ViT-B-16", None, "cpu", random_weights=True, tiny=True).model.state_dict()
    b = build_clip("ViT-B-16", None, "cpu", random_weights=True, tiny=True).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.testing.assert_close(torch.rand(3), expected)  # the caller's random stream is where it was
