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
    equals the mask pulled back onto the coarse grid (the adjoint of upsampling: its backward kernel)
    times the dense features. Masks whose coarse footprints do not meet share one channel of the pull-back
    (``footprint_channels``): every cell then sums the same terms in the same order as in the mask's own channel,
    so the result is bit for bit that of one channel per mask, at a fraction of the cost.
    """
    h, w = dense.shape[:2]
    if masks.shape[0] == 0:
        return torch.zeros(0, dense.shape[-1])
    m = masks.float()
    counts = cell_counts(m, (h, w))
    foot = F.max_pool2d((counts > 0).float()[:, None], 3, stride=1, padding=1)[:, 0] > 0
    channel = footprint_channels(foot)
    packed = (F.one_hot(channel).T.float() @ m.flatten(1)).reshape(-1, 1, *m.shape[1:])  # disjoint: sum = union
    # the adjoint of F.interpolate(size=(H, W), mode="bilinear", align_corners=False), as autograd calls it
    channel_weights = torch.ops.aten.upsample_bilinear2d_backward(packed, list(masks.shape[-2:]),
                                                                  [packed.shape[0], 1, h, w], False, None, None)
    cell_weights = torch.where(foot, channel_weights[channel, 0], 0.0)
    pooled = cell_weights.flatten(1) @ dense.reshape(h * w, -1).float()
    return F.normalize(pooled / counts.flatten(1).sum(1, keepdim=True).clamp_min(1), dim=-1)


def cell_counts(masks: Tensor, grid: tuple[int, int]) -> Tensor:
    """[M,h,w]: how many pixels of each mask [M,H,W] (0 / 1 floats) have their centre in each cell of ``grid``
    (exact: sums of ones stay integers in float32 below 2^24)."""
    (h, w), (big_h, big_w) = grid, masks.shape[-2:]
    cy = ((torch.arange(big_h) + 0.5) * h / big_h).long().clamp_max(h - 1)
    cx = ((torch.arange(big_w) + 0.5) * w / big_w).long().clamp_max(w - 1)
    rows = F.one_hot(cy, h).T.float()  # [h, H]
    cols = F.one_hot(cx, w).float()  # [W, w]
    return rows @ masks @ cols


def footprint_channels(foot: Tensor) -> Tensor:
    """Greedy colouring of masks by footprint [M,h,w] (the cells a mask's pull-back reaches: those under its pixels
    and their neighbours): each mask takes the lowest channel that no earlier mask of overlapping footprint holds."""
    flat = foot.flatten(1).float()
    conflict = ((flat @ flat.T) > 0).numpy()
    channel = np.zeros(foot.shape[0], np.int64)
    for i in range(1, foot.shape[0]):
        taken = np.zeros(i + 1, bool)
        taken[channel[:i][conflict[i, :i]]] = True
        channel[i] = int(np.argmin(taken))
    return torch.from_numpy(channel)


def fuse_crop_context(crop: Tensor, context: Tensor, alpha: float) -> Tensor:
    """OpenInsGaussian's mask feature: normalize((1 - alpha) f_crop + alpha f_context); alpha = 0 is the crop alone."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    return F.normalize((1 - alpha) * F.normalize(crop.float(), dim=-1) + alpha * F.normalize(context.float(), dim=-1),
                       dim=-1)
