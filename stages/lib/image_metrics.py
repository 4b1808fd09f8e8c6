"""Image-quality metrics for novel-view synthesis: PSNR and SSIM (Wang et al. 2004, 11x11 Gaussian window)."""

from __future__ import annotations

from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    """PSNR in dB for images in [0,1]: -10 log10(MSE)."""
    mse = torch.mean((pred - target) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def _gaussian_taps(size: int, sigma: float, device, dtype) -> Tensor:
    """The normalised 1D Gaussian whose outer product is the 2D SSIM window."""
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _gaussian_window(size: int, sigma: float, channels: int, device, dtype) -> Tensor:
    g = _gaussian_taps(size, sigma, device, dtype)
    return torch.outer(g, g).expand(channels, 1, size, size).contiguous()


SSIMMethod = Literal["conv", "separable", "fft", "shifted"]


def _separable_blur(maps: Tensor, size: int, sigma: float) -> Tensor:
    """The 11x11 Gaussian window as a row then a column pass (the 2D window is their outer product), zero padding,
    over all channels of ``maps`` [B,C,H,W] in two grouped convolutions."""
    c = maps.shape[1]
    g = _gaussian_taps(size, sigma, maps.device, maps.dtype)
    rows = F.conv2d(maps, g.view(1, 1, 1, size).expand(c, 1, 1, size), padding=(0, size // 2), groups=c)
    return F.conv2d(rows, g.view(1, 1, size, 1).expand(c, 1, size, 1), padding=(size // 2, 0), groups=c)


def _fft_blur(maps: Tensor, size: int, sigma: float) -> Tensor:
    """The same zero-padded window by FFT: the full linear convolution (length n + size - 1 per axis, so nothing
    wraps around) cropped to the centred n x n part."""
    h, w = maps.shape[-2:]
    full = (h + size - 1, w + size - 1)
    g = _gaussian_taps(size, sigma, maps.device, maps.dtype)
    spectrum = torch.fft.rfft2(maps, s=full) * torch.fft.rfft2(torch.outer(g, g), s=full)
    half = size // 2
    return torch.fft.irfft2(spectrum, s=full)[..., half:half + h, half:half + w]


def _shifted_blur(maps: Tensor, size: int, sigma: float) -> Tensor:
    """The same window as weighted sums of shifted copies, a row then a column pass: a stencil that
    ``torch.compile`` fuses into one kernel per pass (eager it is 2 x size small kernels)."""
    h, w = maps.shape[-2:]
    g = _gaussian_taps(size, sigma, maps.device, maps.dtype)
    half = size // 2
    padded = F.pad(maps, (half, half, 0, 0))
    rows = sum(g[k] * padded[..., :, k:k + w] for k in range(size))
    padded = F.pad(rows, (0, 0, half, half))
    return sum(g[k] * padded[..., k:k + h, :] for k in range(size))


_BLURS = {"separable": _separable_blur, "fft": _fft_blur, "shifted": _shifted_blur}


def ssim(pred: Tensor, target: Tensor, window: int = 11, sigma: float = 1.5, method: SSIMMethod = "conv") -> Tensor:
    """Mean SSIM of [...,H,W,C] images in [0,1] with same-padding, as in the 3DGS training loss.

    ``method``: how the Gaussian window is applied; all give the same SSIM up to float rounding (speed only).
    ``conv``: one 2D grouped convolution per map (x, y, x^2, y^2, xy); the others treat the five maps stacked:
    ``separable`` as a row and a column 1D convolution, ``fft`` by FFT, ``shifted`` as shifted sums."""
    if method not in get_args(SSIMMethod):
        raise ValueError(f"ssim: method must be one of {list(get_args(SSIMMethod))}, got {method!r}")
    x = pred.reshape(-1, *pred.shape[-3:]).permute(0, 3, 1, 2)
    y = target.reshape(-1, *target.shape[-3:]).permute(0, 3, 1, 2)
    c = x.shape[1]
    if method != "conv":
        stacked = torch.cat([x, y, x * x, y * y, x * y], 1)
        mu_x, mu_y, xx, yy, xy = _BLURS[method](stacked, window, sigma).split(c, 1)
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
