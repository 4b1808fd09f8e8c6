"""The codebook (Eq. 5-6) and pseudo-ground-truth (Eq. 7) stages on features trained from GT instance masks (CPU).

One Gaussian per scene point, so every Gaussian has a ground-truth instance: the codebook's leaves must be
purer than chance and than a codebook of the untrained features; L_p must fall while the geometry stays put.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from oracle_stores import CPU, REPO, point_gaussians, tiny_scene, write_inputs

from stages import codebook, pseudo_gt
from stages.lib.cli import run_stage
from stages.lib.feature_field import (
    FeatureFieldConfig,
    ViewCameras,
    save_feature_gaussians,
    train_feature_field,
)
from stages.lib.gaussians import PARAM_KEYS
from stages.lib.store import read_store
from stages.methods.openins import codebook as openins_codebook
from stages.methods.openins.losses import pseudo_gt_feature_loss
from stages.methods.openins.objectives import OpenInsInstanceObjective, PseudoGTObjective

K1, K2 = 8, 4
CODEBOOK_PARAMS = f'{{"k_coarse": {K1}, "k_fine": {K2}, "xyz_weight": 1.0, "iters": 50, "seed": 0}}'


@pytest.fixture(scope="module")
def scene():
    return tiny_scene()


@pytest.fixture(scope="module")
def gaussians(scene):
    return point_gaussians(scene)


@pytest.fixture(scope="module")
def trained(scene, gaussians):
    cfg = FeatureFieldConfig(iterations=30, lr_features=0.02)
    return train_feature_field(gaussians, scene, scene.gt_instance, OpenInsInstanceObjective(), cfg, CPU,
                               progress=False)


@pytest.fixture(scope="module")
def stores(scene, gaussians, trained, tmp_path_factory):
    """Input stores plus the trained feature_gaussians store and its codebook written by the codebook CLI."""
    tmp = tmp_path_factory.mktemp("stores")
    paths = write_inputs(tmp, scene, gaussians)
    paths["features"] = tmp / "features.zarr"
    save_feature_gaussians(paths["features"], trained, "test", {}, {},
                           {"sh_degree": 0, "background": [0.0, 0.0, 0.0], "iterations": 30})
    paths["codebook"] = tmp / "codebook.zarr"
    done = subprocess.run([sys.executable, "-m", "stages.codebook", "--gaussians", str(paths["features"]),
                           "--out", str(paths["codebook"]), "--params", CODEBOOK_PARAMS, "--device", "cpu"],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return paths


def leaf_purity(leaf: np.ndarray, instance: np.ndarray) -> float:
    """Fraction of Gaussians whose leaf's majority GT instance is their own."""
    counts = np.zeros((leaf.max() + 1, instance.max() + 1))
    np.add.at(counts, (leaf, instance), 1)
    return float(counts.max(1).sum() / len(leaf))


def test_codebook_store_follows_the_contract(stores, trained):
    cb = read_store("codebook", stores["codebook"])
    n, d = trained["features"].shape
    assert cb.attrs["k_coarse"] == K1 and cb.attrs["k_fine"] == K2
    assert cb["coarse_centres"].shape == (K1, 3 + d) and cb["fine_centres"].shape == (K1 * K2, d)
    coarse, leaf, centres = cb.load("coarse_id"), cb.load("leaf_id"), cb.load("fine_centres")
    assert len(leaf) == n and (leaf >= 0).all() and (leaf // K2 == coarse).all()
    features = trained["features"].numpy()
    for entry in range(K1 * K2):  # a leaf centre is its members' mean feature; unused leaves stay zero
        members = leaf == entry
        expected = features[members].mean(0) if members.any() else np.zeros(d)
        np.testing.assert_allclose(centres[entry], expected, atol=1e-4)


def test_codebook_recovers_instances(scene, gaussians, stores):
    instance = scene.points_instance
    trained_leaf = read_store("codebook", stores["codebook"]).load("leaf_id")
    untrained = torch.rand((len(instance), 6), generator=torch.Generator().manual_seed(0))
    cfg = openins_codebook.CodebookConfig(k_coarse=K1, k_fine=K2)
    keep = torch.ones(len(instance), dtype=torch.bool)
    untrained_leaf = openins_codebook.build_codebook(gaussians["means"], untrained, keep, cfg).leaf_id.numpy()
    rng = np.random.default_rng(0)
    chance = np.mean([leaf_purity(rng.permutation(trained_leaf), instance) for _ in range(20)])
    purity, baseline = leaf_purity(trained_leaf, instance), leaf_purity(untrained_leaf, instance)
    print(f"leaf purity: trained {purity:.3f}, untrained features {baseline:.3f}, chance {chance:.3f}")
    assert purity > 1.8 * chance and purity > baseline + 0.15


def test_low_opacity_gaussians_stay_unassigned(gaussians, trained):
    opacity = torch.sigmoid(gaussians["opacities"]).clone()
    opacity[::3] = 0.01
    keep = opacity >= 0.1
    result = openins_codebook.build_codebook(gaussians["means"], trained["features"], keep,
                                     openins_codebook.CodebookConfig(k_coarse=K1, k_fine=K2, min_opacity=0.1))
    assert torch.equal(result.leaf_id < 0, ~keep) and torch.equal(result.coarse_id < 0, ~keep)


def test_codebook_stage_rejects_plain_gaussians(stores, tmp_path):
    out = tmp_path / "codebook.zarr"
    with pytest.raises(SystemExit) as exc:
        run_stage(codebook.main, codebook.parser(), ["--gaussians", str(stores["gaussians"]), "--out", str(out),
                                                     "--params", CODEBOOK_PARAMS, "--device", "cpu"])
    assert "expected a 'feature_gaussians' store" in str(exc.value.code) and not out.exists()


def mean_pseudo_gt_loss(scene, params, features, target) -> float:
    train = np.where(~scene.is_test)[0]
    with torch.no_grad():
        rendered, _ = ViewCameras(scene, CPU).render(params, features, train)
    return float(np.mean([pseudo_gt_feature_loss(rendered[i], target(int(v))).item() for i, v in enumerate(train)]))


def test_pseudo_gt_training_lowers_lp(scene, trained, stores):
    n, d = trained["features"].shape
    quantised = pseudo_gt.quantised_features(stores["codebook"], n, d, CPU)
    target = pseudo_gt.pseudo_gt_target(trained, quantised, scene, CPU)
    cfg = FeatureFieldConfig(iterations=20, lr_features=0.01, feature_dim=d)
    refined = train_feature_field(trained, scene, None, PseudoGTObjective(target), cfg, CPU,
                                  init_features=trained["features"], progress=False)
    before = mean_pseudo_gt_loss(scene, trained, trained["features"], target)
    after = mean_pseudo_gt_loss(scene, trained, refined["features"], target)
    print(f"L_p over train views: before {before:.4f}, after 20 steps {after:.4f}")
    assert after < 0.7 * before
    assert all(torch.equal(refined[k], trained[k]) for k in PARAM_KEYS), "geometry frozen"


def pseudo_gt_args(stores: dict[str, Path], codebook_path: Path, out: Path, params: str) -> list[str]:
    return ["--scene", str(stores["scene"]), "--gaussians", str(stores["features"]), "--codebook",
            str(codebook_path), "--out", str(out), "--params", params, "--device", "cpu"]


def test_pseudo_gt_cli_writes_a_feature_gaussians_store(stores, tmp_path):
    out = tmp_path / "refined.zarr"
    args = pseudo_gt_args(stores, stores["codebook"], out, '{"iterations": 3, "lr_features": 0.01}')
    done = subprocess.run([sys.executable, "-m", "stages.pseudo_gt", *args], check=False, cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    refined, source = read_store("feature_gaussians", out), read_store("feature_gaussians", stores["features"])
    assert refined.attrs["iterations"] == 3 and refined.attrs["feature_dim"] == source.attrs["feature_dim"]
    for key in PARAM_KEYS:
        assert np.array_equal(refined.load(key), source.load(key)), f"frozen {key} changed"
    assert not np.array_equal(refined.load("features"), source.load("features"))


def test_pseudo_gt_rejects_a_codebook_of_other_gaussians(stores, scene, trained, tmp_path):
    fewer = {k: v[:-10] for k, v in trained.items()}
    features = tmp_path / "fewer.zarr"
    save_feature_gaussians(features, fewer, "test", {}, {}, {"sh_degree": 0, "background": [0, 0, 0],
                                                            "iterations": 0})
    out = tmp_path / "refined.zarr"
    with pytest.raises(SystemExit) as exc:
        run_stage(pseudo_gt.main, pseudo_gt.parser(),
                  pseudo_gt_args({**stores, "features": features}, stores["codebook"], out, '{"iterations": 2}'))
    assert "does not match the 1490 Gaussians" in str(exc.value.code) and not out.exists()


def test_pseudo_gt_keeps_geometry_frozen_only():
    with pytest.raises(ValueError, match="pseudo_gt fixes"):
        pseudo_gt.config({"geometry": "optimise"}, 6)


def test_smoothing_moves_a_never_rendered_gaussian_to_its_surface(scene, trained):
    """smooth_k: a Gaussian no view renders (opacity ~0) carrying another instance's feature takes its neighbours'."""
    params = {k: v.detach().clone() for k, v in trained.items()}
    instance = torch.from_numpy(scene.points_instance)
    a, b = instance[instance >= 0].unique()[:2]
    mean_a, mean_b = (params["features"][instance == i].mean(0) for i in (a, b))
    g = int(torch.nonzero(instance == a)[0])
    params["opacities"][g], params["features"][g] = -30.0, mean_b
    smoothed = openins_codebook.smooth_weak_features(params, scene, openins_codebook.CodebookConfig(smooth_k=8))
    assert (smoothed[g] - mean_a).norm() < (smoothed[g] - mean_b).norm()
    assert (params["features"][g] - mean_a).norm() > (params["features"][g] - mean_b).norm()


def test_smoothing_needs_the_scene_and_is_recorded(stores, scene, tmp_path):
    args = ["--gaussians", str(stores["features"]), "--device", "cpu",
            "--params", CODEBOOK_PARAMS[:-1] + ', "smooth_k": 8}']
    with pytest.raises(ValueError, match="scene"):
        codebook.main(codebook.parser().parse_args(args + ["--out", str(tmp_path / "a.zarr")]))
    codebook.main(codebook.parser().parse_args(args + ["--scene", str(stores["scene"]),
                                                       "--out", str(tmp_path / "b.zarr")]))
    assert read_store("codebook", tmp_path / "b.zarr").attrs["smooth_k"] == 8


def test_smooth_gate_and_weak_quantile_by_hand():
    """smooth_gate keeps a dissimilar neighbour out of the mean, except for the weak Gaussians (smooth_weak_quantile),
    which average over every neighbour."""
    means = torch.tensor([[0.0, 0, 0], [0.01, 0, 0], [0.02, 0, 0]])
    features = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # 0, 1 on a picture; 2 on the wall behind
    weights = torch.tensor([1.0, 2.0, 2.0])
    cfg = openins_codebook.CodebookConfig
    plain = openins_codebook.smooth_features(features, means, weights, cfg(smooth_k=3))
    assert torch.allclose(plain[0], torch.tensor([0.6, 0.4]))  # (1*f0 + 2*f1 + 2*f2) / 5
    gated = openins_codebook.smooth_features(features, means, weights, cfg(smooth_k=3, smooth_gate=0.5))
    assert torch.equal(gated, features)  # nobody is similar across the picture-wall border
    weak = openins_codebook.smooth_features(features, means, weights,
                                            cfg(smooth_k=3, smooth_gate=0.5, smooth_weak_quantile=0.5))
    assert torch.allclose(weak[0], plain[0]) and torch.equal(weak[1:], features[1:])  # 0 weighs least: ungated
    with pytest.raises(ValueError, match="smooth_gate"):
        cfg(smooth_gate=1.5)


def test_smooth_plane_tol_keeps_the_wall_behind_a_picture_out():
    """Nine wall Gaussians on z = 0 (2 cm apart) and one picture Gaussian 3 cm in front: with smooth_plane_tol 1 cm
    the wall Gaussians average only the wall, the picture only itself; without it the picture enters the wall's
    mean."""
    wall = [[x, y, 0.0] for x in (0.0, 0.02, 0.04) for y in (0.0, 0.02, 0.04)]
    means = torch.tensor(wall + [[0.02, 0.02, 0.03]])
    features = torch.tensor([[1.0, 0.0]] * 9 + [[0.0, 1.0]])
    weights = torch.tensor([1.0] * 9 + [9.0])
    cfg = openins_codebook.CodebookConfig
    plain = openins_codebook.smooth_features(features, means, weights, cfg(smooth_k=10))
    assert torch.allclose(plain[0], torch.tensor([0.5, 0.5]))  # (9 * wall + 9 * picture) / 18
    plane = openins_codebook.smooth_features(features, means, weights, cfg(smooth_k=10, smooth_plane_tol=0.01))
    assert torch.equal(plane, features)
    with pytest.raises(ValueError, match="smooth_plane_tol"):
        cfg(smooth_plane_tol=-0.01)
