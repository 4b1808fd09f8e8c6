"""Known-answer tests for the CPU rendering path (3DGS projection + front-to-back compositing)."""

import math

import pytest
import torch

from stages.lib.render import render

W, H, F = 32, 24, 40.0


def camera():
    K = torch.tensor([[[F, 0, W / 2], [0, F, H / 2], [0, 0, 1]]])
    return torch.eye(4)[None], K


def gaussian(x, y, z, sigma, opacity, colour):
    return (torch.tensor([[x, y, z]]), torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), sigma),
            torch.tensor([opacity]), torch.tensor([colour]))


def test_single_gaussian_profile_matches_projected_covariance():
    viewmat, K = camera()
    z, sigma, opacity = 4.0, 0.1, 0.8
    means, quats, scales, opac, col = gaussian(0.0, 0.0, z, sigma, opacity, [1.0, 0.5, 0.25])
    out, alpha, info = render(means, quats, scales, opac, col, viewmat, K, W, H)
    # Projected variance (f * s / z)^2 plus gsplat's eps2d = 0.3 low-pass filter.
    var2d = (F * sigma / z) ** 2 + 0.3
    cx, cy = W / 2, H / 2
    for px, py in [(16, 12), (17, 12), (18, 13)]:
        d2 = (px + 0.5 - cx) ** 2 + (py + 0.5 - cy) ** 2
        expected = opacity * math.exp(-0.5 * d2 / var2d)
        assert alpha[0, py, px, 0].item() == pytest.approx(expected, rel=1e-4)
        assert out[0, py, px, 1].item() == pytest.approx(0.5 * expected, rel=1e-4)
    # Contributions below alpha = 1/255 are dropped, as in gsplat's kernels.
    d2 = (24 + 0.5 - cx) ** 2 + (12 + 0.5 - cy) ** 2
    assert opacity * math.exp(-0.5 * d2 / var2d) < 1 / 255
    assert alpha[0, 12, 24, 0].item() == 0.0
    assert info["radii"].shape == (1, 1, 2) and (info["radii"] > 0).all()


def test_front_gaussian_occludes_back_one_regardless_of_order():
    viewmat, K = camera()
    front = gaussian(0.0, 0.0, 2.0, 0.2, 0.6, [1.0, 0.0, 0.0])
    back = gaussian(0.0, 0.0, 5.0, 0.5, 0.9, [0.0, 0.0, 1.0])
    for first, second in [(front, back), (back, front)]:
        parts = [torch.cat([a, b]) for a, b in zip(first, second)]
        bg = torch.tensor([[0.0, 1.0, 0.0]])
        out, alpha, _ = render(*parts, viewmat, K, W, H, backgrounds=bg)
        a1 = 0.6  # both centred on the principal point: alpha = opacity at the pixel nearest the centre
        px, py = W // 2, H // 2
        d2 = 0.5 ** 2 + 0.5 ** 2
        a1 = 0.6 * math.exp(-0.5 * d2 / ((F * 0.2 / 2.0) ** 2 + 0.3))
        a2 = 0.9 * math.exp(-0.5 * d2 / ((F * 0.5 / 5.0) ** 2 + 0.3))
        expected = torch.tensor([a1, (1 - a1) * (1 - a2), (1 - a1) * a2])
        torch.testing.assert_close(out[0, py, px], expected, rtol=1e-4, atol=1e-6)
        assert alpha[0, py, px, 0].item() == pytest.approx(1 - (1 - a1) * (1 - a2), rel=1e-5)


def test_gaussian_behind_camera_is_invisible_and_depth_mode():
    viewmat, K = camera()
    means, quats, scales, opac, col = gaussian(0.0, 0.0, -3.0, 0.2, 0.9, [1.0, 1.0, 1.0])
    out, alpha, _ = render(means, quats, scales, opac, col, viewmat, K, W, H)
    assert alpha.abs().max() == 0
    means, quats, scales, opac, col = gaussian(0.0, 0.0, 3.0, 0.3, 0.99, [1.0, 1.0, 1.0])
    out, alpha, _ = render(means, quats, scales, opac, col, viewmat, K, W, H, render_mode="RGB+ED")
    assert out.shape[-1] == 4
    assert out[0, H // 2, W // 2, 3].item() == pytest.approx(3.0, rel=1e-4)


def test_gradients_reach_means2d_for_densification():
    viewmat, K = camera()
    means, quats, scales, opac, col = gaussian(0.1, 0.0, 3.0, 0.2, 0.7, [0.3, 0.3, 0.3])
    means.requires_grad_(True)
    out, _, info = render(means, quats, scales, opac, col, viewmat, K, W, H)
    info["means2d"].retain_grad()
    out.sum().backward()
    assert info["means2d"].grad is not None and info["means2d"].grad.abs().sum() > 0
    assert means.grad.abs().sum() > 0
