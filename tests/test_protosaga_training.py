"""Proto-SaGa training through the shared feature-field trainer (Sec. 3.1): per-view classifiers as objective
parameters, frozen geometry and joint RGB + feature training (Eq. 8), checkpointed classifiers (CPU, tiny room)."""

import numpy as np
import pytest
import torch
from oracle_stores import CPU, point_gaussians, tiny_scene

from stages.lib.feature_field import (
    GEOMETRY_KEYS,
    FeatureFieldConfig,
    ViewCameras,
    train_feature_field,
    view_mask_ids,
)
from stages.lib.gs_trainer import GaussianTrainer
from stages.methods.protosaga.classifiers import ViewClassifierObjective, view_cross_entropy

STEPS = 40


@pytest.fixture(scope="module")
def scene():
    return tiny_scene()


@pytest.fixture(scope="module")
def gaussians(scene):
    return point_gaussians(scene)


def mean_train_ce(scene, params, objective) -> float:
    """L_CE (Eq. 7) of the trained features over the train views, with the learnt classifiers."""
    labels = torch.from_numpy(scene.gt_instance)
    with torch.no_grad():
        rendered, _ = ViewCameras(scene, CPU).render(params, params["features"], range(scene.num_views))
        ces = []
        for v in np.where(~scene.is_test)[0]:
            ids = view_mask_ids(labels[v])
            target = torch.searchsorted(ids, labels[v].clamp_min(0))
            ces.append(view_cross_entropy(rendered[v], target, objective.classifier(int(v)), objective.tau).item())
    return float(np.mean(ces))


def test_frozen_geometry_learns_classifiers_and_features(scene, gaussians):
    untrained = ViewClassifierObjective(lr=0.02)
    cfg = FeatureFieldConfig(feature_dim=16, iterations=0, lr_features=0.02)
    start = train_feature_field(gaussians, scene, scene.gt_instance, untrained, cfg, CPU, progress=False)
    objective = ViewClassifierObjective(lr=0.02)
    cfg = FeatureFieldConfig(feature_dim=16, iterations=STEPS, lr_features=0.02)
    out = train_feature_field(gaussians, scene, scene.gt_instance, objective, cfg, CPU, progress=False)
    train = np.where(~scene.is_test)[0]
    assert sorted(int(k) for k in objective.classifiers) == train.tolist()
    for v in train:  # rows follow the view's own mask ids; the classifiers moved from their initialisation
        ids = np.unique(scene.gt_instance[v])
        assert objective.mask_ids[v, :len(ids)].tolist() == ids.tolist()
        assert not torch.equal(objective.classifier(int(v)), untrained.classifier(int(v)))
    for key in GEOMETRY_KEYS:
        assert torch.equal(out[key], gaussians[key].float()), key
    assert mean_train_ce(scene, out, objective) < 0.8 * mean_train_ce(scene, start, untrained)


def test_joint_training_adds_the_photometric_loss(scene, gaussians):
    cfg = FeatureFieldConfig(feature_dim=16, iterations=STEPS, lr_features=0.02, geometry="optimise",
                             densify_stop_iter=0, photometric_weight=1.0)
    seen: list[float] = []

    def colour_error(step: int, trainer: GaussianTrainer) -> None:
        if step in (1, STEPS):
            colours, _, _ = ViewCameras(scene, CPU).render_with_colours(
                trainer.params, trainer.params["features"], [0], torch.zeros(3))
            seen.append(torch.abs(colours[0] - torch.from_numpy(scene.images[0]) / 255.0).mean().item())

    out = train_feature_field(gaussians, scene, scene.gt_instance, ViewClassifierObjective(), cfg, CPU,
                              progress=False, on_step=colour_error)
    assert not torch.equal(out["sh0"], gaussians["sh0"].float())  # colours only get gradients from L_REC
    assert not torch.equal(out["means"], gaussians["means"].float())
    assert seen[1] < seen[0]
    with pytest.raises(ValueError, match="photometric_weight"):
        FeatureFieldConfig(photometric_weight=1.0)  # frozen geometry cannot fit colours


def test_classifiers_resume_from_checkpoint(scene, gaussians, tmp_path):
    ckpt = tmp_path / "run.checkpoint.pt"
    cfg = FeatureFieldConfig(feature_dim=16, iterations=10, lr_features=0.02, checkpoint_every=5)
    whole = ViewClassifierObjective(lr=0.02)
    train_feature_field(gaussians, scene, scene.gt_instance, whole, cfg, CPU, progress=False)

    def killed(step: int, trainer: GaussianTrainer) -> None:
        if step == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_feature_field(gaussians, scene, scene.gt_instance, ViewClassifierObjective(lr=0.02), cfg, CPU,
                            checkpoint=ckpt, fingerprint="fp", progress=False, on_step=killed)
    assert torch.load(ckpt, weights_only=False)["step"] == 5
    resumed = ViewClassifierObjective(lr=0.02)
    train_feature_field(gaussians, scene, scene.gt_instance, resumed, cfg, CPU, checkpoint=ckpt, fingerprint="fp",
                        progress=False)
    for key in whole.classifiers:
        assert torch.allclose(resumed.classifiers[key], whole.classifiers[key], atol=1e-6), key


def test_several_views_per_step_step_each_drawn_classifier(scene, gaussians):
    # views_per_step = 3: one step moves exactly the three drawn views' classifiers (each by Adam's full first step,
    # lr * sign(grad), though the loss is averaged over the views); the other views' classifiers keep their init.
    cfg = FeatureFieldConfig(feature_dim=16, iterations=1, lr_features=0.02, views_per_step=3)
    lr = 0.02
    objective = ViewClassifierObjective(lr=lr)
    train_feature_field(gaussians, scene, scene.gt_instance, objective, cfg, CPU, progress=False)
    init = ViewClassifierObjective(lr=lr)
    init.prepare([objective.mask_ids[v][objective.mask_ids[v] >= 0] if str(v) in objective.classifiers else None
                  for v in range(scene.num_views)], 16)
    moved = [int(k) for k in objective.classifiers
             if not torch.equal(objective.classifiers[k], init.classifiers[k])]
    assert len(moved) == 3 and set(moved) <= set(np.where(~scene.is_test)[0].tolist())
    for v in moved:
        step = (objective.classifier(v) - init.classifier(v)).abs()
        assert step.max().item() == pytest.approx(lr, rel=1e-3)
