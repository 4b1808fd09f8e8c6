"""Image-quality metrics for novel-view synthesis: PSNR and SSIM (Wang et al. 2004, 11x11 Gaussian window)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB for images in [0,1]: -10 log10(MSE)."""
    mse = torch.mean((pred - target) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def _separable_blur(maps: Tensor, size: int, sigma: float) -> Tensor:
    """The 11x11 Gaussian window as a row then a column pass (the 2D window is their outer product), zero padding,
    over all channels of ``maps`` [B,C,H,W] in two grouped convolutions."""
    c = maps.shape[1]
    g = _gaussian_window(size, sigma, 1, maps.device, maps.dtype)[0, 0, size // 2]
    g = g / g.sum()
    rows = F.conv2d(maps, g.view(1, 1, 1, size).expand(c, 1, 1, size), padding=(0, size // 2), groups=c)
    return F.conv2d(rows, g.view(1, 1, size, 1).expand(c, 1, size, 1), padding=(size // 2, 0), groups=c)


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5, separable: bool = False) -> Tensor:
    """Mean SSIM of [...,H,W,C] images in [0,1] with same-padding, as in the 3DGS training loss.

    ``separable``: the same window applied as two 1D passes to the five maps (x, y, x^2, y^2, xy) stacked, in
    two convolutions instead of five 2D ones (equal up to float rounding; faster)."""
    x = pred.reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2)
    y = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2)
    c = x.shape[1]
    if separable:
        mu_x, mu_y, xx, yy, xy = _separable_blur(torch.cat([x, y, x * x, y * y, x * y], 1), window, sigma).split(c, 1)
        var_x, var_y, cov = xx - mu_x ** 2, yy - mu_y ** 2, xy - mu_x * mu_y
    else:
        w = _gaussian_window(window, sigma, c, x.device, x.dtype)
        conv = lambda t: F.conv2d(t, w, padding=window // 2, groups=c)  # noqa: E731
        mu_x, mu_y = conv(x), conv(y)
        var_x = conv(x * x) - mu_x ** 2
        var_y = conv(y * y) - mu_y ** 2
        cov = conv(x * y) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    num = (2 * mu_x * mu_y + c1) * (2 * cov + c2)
    den = (mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2)
    return (num / den).mean()
