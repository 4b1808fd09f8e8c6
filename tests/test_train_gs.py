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

