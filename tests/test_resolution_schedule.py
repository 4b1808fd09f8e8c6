"""Coarse-to-fine training resolution (train_gs ``downscale_schedule``): block means, scaled intrinsics that render
the same picture at the lower resolution, the schedule's checks, and the trainer rendering each step at its level."""

import pytest
import torch

import stages.lib.gs_trainer as gs_trainer
from stages.lib.gs_trainer import GSTrainConfig, train_rgb
from stages.lib.render import render
from stages.lib.resolution_schedule import (
    check_schedule,
    downscale_images,
    downscale_intrinsics,
    level_at,
    resolution_levels,
)
from stages.lib.synthetic import SyntheticConfig, make_scene


def test_block_means_round_to_uint8_and_drop_partial_blocks():
    img = torch.tensor([[0, 1, 10, 20, 99],
                        [2, 3, 30, 41, 99],
                        [255, 255, 0, 0, 99]], dtype=torch.uint8)
    images = img[None, :, :, None].expand(1, 3, 5, 3).contiguous()
    out = downscale_images(images, 2)
    assert out.shape == (1, 1, 2, 3) and out.dtype == torch.uint8
    # (0 + 1 + 2 + 3) / 4 = 1.5 -> 2 (round half to even); (10 + 20 + 30 + 41) / 4 = 25.25 -> 25
    assert out[0, 0, :, 0].tolist() == [2, 25]


def test_intrinsics_scale_focal_lengths_and_principal_point():
    K = torch.tensor([[[800.0, 0.0, 400.0], [0.0, 700.0, 300.0], [0.0, 0.0, 1.0]]])
    assert downscale_intrinsics(K, 4)[0].tolist() == [[200.0, 0.0, 100.0], [0.0, 175.0, 75.0], [0.0, 0.0, 1.0]]
    assert K[0, 0, 0] == 800.0, "the input is not modified"


def test_low_resolution_render_is_the_block_mean_of_the_full_render():
    """The convention check: with K / f at (W / f, H / f) the renderer draws the same scene, so its image equals the
    full-resolution render averaged over f x f blocks, up to the sampling of the Gaussians at pixel centres."""
    torch.manual_seed(0)
    n = 6
    means = torch.cat([torch.rand(n, 2) * 1.2 - 0.6, torch.full((n, 1), 0.0)], 1)
    quats = torch.tensor([[1.0, 0.0, 0.0, 0.0]]).repeat(n, 1)
    scales = torch.full((n, 3), 0.6)  # 9 px at full size, 2.3 px at 1/4: well above the 0.3 px^2 low-pass
    opacities = torch.full((n,), 0.8)
    colors = torch.rand(n, 3)
    viewmat = torch.eye(4)[None]
    viewmat[0, 2, 3] = 4.0
    W, H, f = 64, 48, 4
    K = torch.tensor([[[60.0, 0.0, 32.0], [0.0, 60.0, 24.0], [0.0, 0.0, 1.0]]])
    full, _, _ = render(means, quats, scales, opacities, colors, viewmat, K, W, H)
    low, _, _ = render(means, quats, scales, opacities, colors, viewmat, downscale_intrinsics(K, f), W // f, H // f)
    pooled = full[0].reshape(H // f, f, W // f, f, 3).mean(dim=(1, 3))
    assert low.shape == (1, H // f, W // f, 3)
    assert (low[0] - pooled).abs().max() < 0.04
    shifted = downscale_intrinsics(K, f)
    shifted[:, 0, 2] += 0.5  # half a low-resolution pixel off: clearly worse
    off, _, _ = render(means, quats, scales, opacities, colors, viewmat, shifted, W // f, H // f)
    assert (off[0] - pooled).abs().mean() > 2 * (low[0] - pooled).abs().mean()


def test_schedule_checks_name_the_parameter():
    check_schedule([[100, 4], [300, 2]], 500, 64, 48)
    for bad in ([[100, 2], [50, 2]],  # steps not increasing
                [[100, 2], [300, 4]],  # factor grows
                [[100, 1]],  # factor 1 is no downscaling
                [[600, 2]],  # beyond the iterations
                [[100, 128]],  # no pixel left
                [[100]]):
        with pytest.raises(ValueError, match="downscale_schedule"):
            check_schedule(bad, 500, 64, 48)


def test_levels_serve_their_steps_and_end_at_full_resolution():
    images = torch.zeros(2, 48, 64, 3, dtype=torch.uint8)
    Ks = torch.eye(3).repeat(2, 1, 1)
    levels = resolution_levels(images, Ks, 64, 48, [[100, 4], [300, 2]], 500)
    assert [(lv.factor, lv.width, lv.height) for lv in levels] == [(4, 16, 12), (2, 32, 24), (1, 64, 48)]
    assert [level_at(levels, s).factor for s in (0, 99, 100, 299, 300, 499)] == [4, 4, 2, 2, 1, 1]
    assert levels[-1].images is images
    assert [lv.factor for lv in resolution_levels(images, Ks, 64, 48, [], 500)] == [1]


def test_trainer_renders_each_step_at_its_level(monkeypatch):
    scene = make_scene(SyntheticConfig(seed=3, num_views=6, width=32, height=24, num_points=400))
    sizes = []
    real = gs_trainer.render_params

    def recording(params, viewmats, Ks, width, height, *args, **kw):
        sizes.append((width, height))
        return real(params, viewmats, Ks, width, height, *args, **kw)

    monkeypatch.setattr(gs_trainer, "render_params", recording)
    cfg = GSTrainConfig.from_dict({"iterations": 12, "sh_degree": 0, "checkpoint_every": 0,
                                   "downscale_schedule": [[4, 4], [8, 2]]})
    assert cfg.downscale_schedule == ((4, 4), (8, 2))
    params = train_rgb(scene, cfg, torch.device("cpu"), progress=False)
    assert sizes == [(8, 6)] * 4 + [(16, 12)] * 4 + [(32, 24)] * 4
    assert torch.isfinite(params["means"]).all()
