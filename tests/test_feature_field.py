"""The shared feature-field trainer and the train_features stage on a tiny synthetic room (CPU).

Masks are the ground-truth instance maps, so a working trainer must make the rendered features separate
instances; frozen geometry must stay bitwise unchanged; an interrupted stage resumes from its checkpoint.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from oracle_stores import CPU, REPO, point_gaussians, tiny_scene, write_gt_masks, write_inputs

from stages import train_features
from stages.lib.cli import run_stage
from stages.lib.feature_field import (
    GEOMETRY_KEYS,
    FeatureFieldConfig,
    ViewCameras,
    label_masks,
    train_feature_field,
)
from stages.lib.gaussians import PARAM_KEYS
from stages.lib.scene import SceneData
from stages.lib.store import read_store
from stages.methods.openins.objectives import OpenInsInstanceObjective

TRAIN = {"iterations": 40, "lr_features": 0.02, "seed": 0}


# ------------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------------
def instance_separation(scene: SceneData, params: dict, features: torch.Tensor) -> float:
    """Mean over views of (mean distance between GT instances' mean rendered features) / (within-instance spread)."""
    with torch.no_grad():
        rendered, _ = ViewCameras(scene, CPU).render(params, features, range(scene.num_views))
    ratios = []
    for v in range(scene.num_views):
        masks = label_masks(torch.from_numpy(scene.gt_instance[v]))
        flat, weights = rendered[v].reshape(-1, features.shape[1]), masks.flatten(1).float()
        means = weights @ flat / weights.sum(1, keepdim=True)
        spread = (weights * torch.cdist(means, flat)).sum() / weights.sum()
        ratios.append((torch.pdist(means).mean() / spread).item())
    return float(np.mean(ratios))


# ------------------------------------------------------------------------------------------------
# Fixtures
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def scene():
    return tiny_scene()


@pytest.fixture(scope="module")
def gaussians(scene):
    return point_gaussians(scene)


@pytest.fixture(scope="module")
def inputs(scene, gaussians, tmp_path_factory):
    return write_inputs(tmp_path_factory.mktemp("inputs"), scene, gaussians)


@pytest.fixture(scope="module")
def trained(scene, gaussians):
    cfg = FeatureFieldConfig(**TRAIN)
    return train_feature_field(gaussians, scene, scene.gt_instance, OpenInsInstanceObjective(), cfg, CPU,
                               progress=False)


# ------------------------------------------------------------------------------------------------
# The trainer
# ------------------------------------------------------------------------------------------------
def test_trained_features_separate_instances(scene, gaussians, trained):
    start = torch.rand((len(gaussians["means"]), 6), generator=torch.Generator().manual_seed(TRAIN["seed"]))
    before = instance_separation(scene, gaussians, start)
    after = instance_separation(scene, trained, trained["features"])
    print(f"instance separation (between / within): untrained {before:.2f}, trained {after:.2f}")
    assert before < 1.2, "random features do not separate instances"
    assert after > 1.8 and after > 1.7 * before


def test_unit_features_train_and_save_unit_vectors(scene, gaussians):
    """OpenInsGaussian's ``unit_features`` (OpenGaussian's normalisation): the field separates the instances as well,
    and the saved features are the unit vectors it rendered."""
    out = train_feature_field(gaussians, scene, scene.gt_instance, OpenInsInstanceObjective(unit_features=True),
                              FeatureFieldConfig(**TRAIN), CPU, progress=False)
    norms = out["features"].norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)
    assert instance_separation(scene, out, out["features"]) > 1.8


def test_frozen_geometry_is_bitwise_unchanged(scene, gaussians, trained):
    fresh = point_gaussians(scene)
    for key in PARAM_KEYS:
        assert torch.equal(trained[key], fresh[key]) and torch.equal(gaussians[key], fresh[key]), key
    assert trained["features"].shape == (len(gaussians["means"]), 6)


def test_optimised_geometry_moves_and_colours_stay(scene, gaussians):
    cfg = FeatureFieldConfig(iterations=3, lr_features=0.02, geometry="optimise", densify_stop_iter=100,
                             views_per_step=2)
    out = train_feature_field(gaussians, scene, scene.gt_instance, OpenInsInstanceObjective(), cfg, CPU,
                              progress=False)
    fresh = point_gaussians(scene)
    assert all(not torch.equal(out[k], fresh[k]) for k in GEOMETRY_KEYS)
    assert all(torch.equal(out[k], fresh[k]) and torch.equal(gaussians[k], fresh[k]) for k in ("sh0", "shN")), \
        "colours untouched, inputs not updated in place"


def test_label_masks_drops_unlabelled_and_small_masks():
    labels = torch.tensor([[0, 0, 1], [-1, 2, 2]])
    masks = label_masks(labels, min_pixels=2)
    assert masks.shape == (2, 2, 3)
    assert masks[0].sum() == 2 and masks[1].sum() == 2 and not masks[:, 1, 0].any()


def test_config_rejects_unknown_keys_and_modes():
    with pytest.raises(ValueError, match="unknown feature-field parameters"):
        FeatureFieldConfig.from_dict({"iterationz": 3})
    with pytest.raises(ValueError, match="geometry"):
        FeatureFieldConfig(geometry="thaw")


# ------------------------------------------------------------------------------------------------
# The stage
# ------------------------------------------------------------------------------------------------
def stage_args(inputs: dict[str, Path], out: Path, params: str) -> list[str]:
    return ["--scene", str(inputs["scene"]), "--gaussians", str(inputs["gaussians"]), "--masks",
            str(inputs["masks"]), "--out", str(out), "--params", params, "--device", "cpu"]


def test_stage_cli_writes_a_feature_gaussians_store(inputs, gaussians, tmp_path):
    out = tmp_path / "features.zarr"
    params = '{"iterations": 4, "lr_features": 0.02, "feature_dim": 5, "level": "whole", ' \
             '"objective": "openins_instance", "objective_params": {"w_smooth": 0.1}}'
    done = subprocess.run([sys.executable, "-m", "stages.train_features", *stage_args(inputs, out, params)],
                          check=False, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    store = read_store("feature_gaussians", out)
    assert store.sizes["N"] == len(gaussians["means"]) and store.sizes["D"] == 5
    assert {k: store.attrs[k] for k in ("sh_degree", "iterations", "feature_dim", "level", "objective")} == \
        {"sh_degree": 0, "iterations": 4, "feature_dim": 5, "level": "whole", "objective": "openins_instance"}
    gs = read_store("gaussians", inputs["gaussians"])
    for key in PARAM_KEYS:
        assert np.array_equal(store.load(key), gs.load(key)), f"frozen {key} changed"
    assert np.isfinite(store.load("features")).all()
    assert not list(tmp_path.glob("*.checkpoint.pt")) and not list(tmp_path.glob("*.partial-*"))


def test_stage_rejects_masks_of_another_size(inputs, scene, tmp_path):
    masks = tmp_path / "masks_small.zarr"
    write_gt_masks(masks, scene.gt_instance[:, :-2])
    out = tmp_path / "features.zarr"
    args = stage_args({**inputs, "masks": masks}, out, '{"iterations": 2}')
    with pytest.raises(SystemExit) as exc:
        run_stage(train_features.main, train_features.parser(), args)
    assert "labels cover 8 views of 22x32 pixels but the scene" in str(exc.value.code)
    assert not out.exists() and not list(tmp_path.glob("features.zarr*"))


def test_stage_rejects_an_unknown_level(inputs, tmp_path):
    out = tmp_path / "features.zarr"
    with pytest.raises(SystemExit) as exc:
        run_stage(train_features.main, train_features.parser(), stage_args(inputs, out, '{"level": "part"}'))
    assert "no mask level 'part'" in str(exc.value.code) and not out.exists()


class Interrupt(Exception):
    pass


def test_interrupted_stage_resumes_to_the_uninterrupted_result(inputs, tmp_path, monkeypatch):
    params = '{"iterations": 12, "checkpoint_every": 5, "lr_features": 0.02}'
    trainer_fn = train_features.train_feature_field
    seen: list[int] = []

    def with_hook(hook):
        monkeypatch.setattr(train_features, "train_feature_field",
                            lambda *a, **kw: trainer_fn(*a, **kw, progress=False, on_step=hook))

    def interrupt_at_8(step, trainer):
        if step == 8:
            raise Interrupt

    out = tmp_path / "resumed.zarr"
    with_hook(interrupt_at_8)
    with pytest.raises(Interrupt):
        run_stage(train_features.main, train_features.parser(), stage_args(inputs, out, params))
    ckpt = tmp_path / "resumed.checkpoint.pt"
    assert not out.exists() and torch.load(ckpt, weights_only=False)["step"] == 5
    with_hook(lambda step, trainer: seen.append(step))
    run_stage(train_features.main, train_features.parser(), stage_args(inputs, out, params))
    assert seen == list(range(6, 13)), "resumed after the step-5 checkpoint"
    assert not ckpt.exists()

    straight = tmp_path / "straight.zarr"
    run_stage(train_features.main, train_features.parser(), stage_args(inputs, straight, params))
    diff = np.abs(read_store("feature_gaussians", out).load("features")
                  - read_store("feature_gaussians", straight).load("features"))
    # Equal up to the CPU backward's float non-determinism (Adam can amplify it where a gradient is ~0).
    assert np.quantile(diff, 0.99) < 1e-5, np.quantile(diff, [0.5, 0.99, 1.0])


def test_blending_weights_sum_to_the_rendered_alpha(scene, gaussians):
    """sum_i w_i = sum_p alpha(p): F(p) of the feature f = 1 is the rendered alpha (3DGS Eq. 3)."""
    from stages.lib.gaussians import activated
    from stages.lib.render import render

    cams = ViewCameras(scene, CPU)
    weights = cams.blending_weights(gaussians, [0, 2])
    a = activated({k: gaussians[k] for k in PARAM_KEYS})
    _, alphas, _ = render(a["means"], a["quats"], a["scales"], a["opacities"], torch.ones(len(a["means"]), 1),
                          cams.viewmats[[0, 2]], cams.Ks[[0, 2]], cams.width, cams.height)
    assert weights.shape == (len(a["means"]),) and (weights >= 0).all() and weights.max() > 0
    assert weights.sum().item() == pytest.approx(alphas.sum().item(), rel=1e-4)


def test_a_gaussian_behind_an_opaque_one_gets_almost_no_blending_weight(scene):
    """Two Gaussians on view 0's optical axis: the back one's weight drops by its transmittance behind the front."""
    w2c = torch.from_numpy(scene.world_to_camera[0]).float()
    centre, forward = -w2c[:3, :3].T @ w2c[:3, 3], w2c[:3, :3].T @ torch.tensor([0.0, 0, 1])

    def two(front_opacity: float) -> dict[str, torch.Tensor]:
        return {"means": torch.stack([centre + 1.0 * forward, centre + 2.0 * forward]),
                "quats": torch.tensor([[1.0, 0, 0, 0]] * 2), "scales": torch.log(torch.tensor([[0.3] * 3, [0.05] * 3])),
                "opacities": torch.logit(torch.tensor([front_opacity, 0.9])),
                "sh0": torch.zeros(2, 1, 3), "shN": torch.zeros(2, 0, 3)}

    cams = ViewCameras(scene, CPU)
    alone, hidden = cams.blending_weights(two(1e-4), [0]), cams.blending_weights(two(0.999), [0])
    assert alone[1] > 1.0  # the back Gaussian covers several pixels when nothing is in front
    # 3DGS clamps alpha at 0.99, so at best 1 % of the light passes the front Gaussian's centre
    assert hidden[1] < 0.02 * alone[1] and hidden[0] > alone[0]
