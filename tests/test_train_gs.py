"""The 3DGS trainer on CPU: checkpoints every N steps, and an interrupted run resumes where it stopped."""

import pytest
import torch

from stages.lib.gs_trainer import GSTrainConfig, train_rgb
from stages.lib.synthetic import SyntheticConfig, make_scene


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def scene():
    return make_scene(SyntheticConfig(seed=2, num_views=8, width=32, height=24, num_points=800))


def test_interrupted_training_resumes_from_last_checkpoint(scene, tmp_path):
    cfg = GSTrainConfig(iterations=60, sh_degree=0, checkpoint_every=20)
    ckpt = tmp_path / "run.checkpoint.pt"

    def stop_at_45(step, trainer):
        if step == 45:
            raise Interrupt

    with pytest.raises(Interrupt):
        train_rgb(scene, cfg, torch.device("cpu"), checkpoint=ckpt, fingerprint="abc", progress=False,
                  on_step=stop_at_45)
    assert torch.load(ckpt, weights_only=False)["step"] == 40
    seen = []
    params = train_rgb(scene, cfg, torch.device("cpu"), checkpoint=ckpt, fingerprint="abc", progress=False,
                       on_step=lambda step, trainer: seen.append(step))
    assert seen[0] == 41 and seen[-1] == 60, "resumed after the step-40 checkpoint"
    assert params["means"].shape[1] == 3
    seen.clear()
    train_rgb(scene, cfg, torch.device("cpu"), checkpoint=ckpt, fingerprint="other-params", progress=False,
              on_step=lambda step, trainer: seen.append(step))
    assert seen[0] == 1, "a checkpoint written for other parameters is ignored"



def test_periodic_opacity_reset_fires_while_densifying(scene):
    """3DGS resets every opacity to 2 x prune_opa every reset_every steps (gsplat 1.5.3's own check never fires)."""
    cfg = GSTrainConfig.from_dict({"iterations": 31, "sh_degree": 0, "checkpoint_every": 0,
                                   "densify": {"refine_start_iter": 5, "refine_stop_iter": 25, "reset_every": 15,
                                               "refine_every": 100}})
    assert [s for s in range(40) if cfg.densify.is_opacity_reset_step(s)] == [15]
    max_opacity = {}
    train_rgb(scene, cfg, torch.device("cpu"), progress=False,
              on_step=lambda step, t: max_opacity.__setitem__(step, torch.sigmoid(t.params["opacities"]).max().item()))
    reset_value = 2 * cfg.densify.prune_opa
    assert max_opacity[15] > 0.05, "no reset before step 15"
    assert max_opacity[16] == pytest.approx(reset_value, rel=1e-3), "all opacities clamped at the reset"


def test_white_background_adds_the_reset_at_densification_start(scene):
    from dataclasses import replace

    white = replace(scene, background=(1.0, 1.0, 1.0))
    cfg = GSTrainConfig.from_dict({"iterations": 12, "sh_degree": 0, "checkpoint_every": 0,
                                   "densify": {"refine_start_iter": 10, "refine_stop_iter": 11, "reset_every": 0}})
    seen = {}
    for name, sc in (("black", scene), ("white", white)):
        train_rgb(sc, cfg, torch.device("cpu"), progress=False,
                  on_step=lambda step, t, name=name: seen.setdefault(name, {}).__setitem__(
                      step, torch.sigmoid(t.params["opacities"]).max().item()))
    assert seen["white"][11] == pytest.approx(2 * cfg.densify.prune_opa, rel=1e-3)
    assert seen["black"][11] > 0.05
