"""Mask crops for CLIP (LangSplat-style) and the crop / context feature fusion of OpenInsGaussian."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def square_box(bbox: tuple[float, float, float, float]) -> tuple[int, int, int]:
    """The square around a mask's x, y, w, h box, centred on it: (x0, y0, side); it may leave the image."""
    x, y, w, h = bbox
    side = int(max(w, h))
    x0 = int(np.floor(x + w / 2 - side / 2))
    y0 = int(np.floor(y + h / 2 - side / 2))
    return x0, y0, side


def masked_square_crop(image: np.ndarray, mask: np.ndarray, size: int = 224) -> np.ndarray:
    """The mask's square crop with everything outside the mask blanked to black, resized to ``size``.

    Parts of the square outside the image are black too, so the object keeps its aspect ratio and position.
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return np.zeros((size, size, 3), dtype=np.uint8)
    bbox = (xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)
    x0, y0, side = square_box(bbox)
    crop = np.zeros((side, side, 3), dtype=np.uint8)
    h, w = mask.shape
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    region = image[sy0:sy1, sx0:sx1] * mask[sy0:sy1, sx0:sx1, None]
    crop[sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = region
    t = torch.from_numpy(crop).permute(2, 0, 1)[None].float()
    resized = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)
    return resized[0].permute(1, 2, 0).round().clamp(0, 255).byte().numpy()


def pool_in_masks(dense: Tensor, masks: Tensor) -> Tensor:
    """Context feature of each mask: the dense feature map [h,w,E], bilinearly upsampled to the masks' [M,H,W]
    and averaged inside each mask, L2-normalised.

    Computed without materialising the [E,H,W] upsampled map: upsampling is linear, so the mean inside a mask
    equals the mask pulled back onto the coarse grid (the adjoint of upsampling, one vector-Jacobian product
    for all masks) times the dense features.
    """
    h, w = dense.shape[:2]
    m = masks.float()[:, None]

    def upsample(x: Tensor) -> Tensor:
        return F.interpolate(x, size=masks.shape[-2:], mode="bilinear", align_corners=False)

    _, pull_back = torch.func.vjp(upsample, torch.zeros(masks.shape[0], 1, h, w))
    (cell_weights,) = pull_back(m)
    pooled = cell_weights.flatten(1) @ dense.reshape(h * w, -1).float()
    return F.normalize(pooled / m.flatten(1).sum(1, keepdim=True).clamp_min(1), dim=-1)


def fuse_crop_context(crop: Tensor, context: Tensor, alpha: float) -> Tensor:
    """OpenInsGaussian's mask feature: normalize((1 - alpha) f_crop + alpha f_context); alpha = 0 is the crop alone."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return F.normalize((1 - alpha) * F.normalize(crop.float(), dim=-1) + alpha * F.normalize(context.float(), dim=-1),
                       dim=-1)
