"""Coarse-to-fine training resolution for the RGB Gaussians (``train_gs`` parameter ``downscale_schedule``).

Not part of the 3DGS recipe: a speed option after the resolution scheduling of DashGaussian (Chen et al., CVPR 2025),
which renders the early, coarse steps at a lower resolution, where the loss cannot use the detail anyway. Our form
is the simplest one: a list of ``[until_step, factor]`` pairs, e.g. ``[[2000, 4], [10000, 2]]``, trains the steps
before 2000 at 1/4 of the width and height, those before 10000 at 1/2, the rest at full resolution. A level's
targets are the train images averaged over ``factor x factor`` pixel blocks (rounded back to 8 bit, as the
full-size targets are); its cameras are the same with the intrinsics' focal lengths and principal point divided by
``factor``: a low-resolution pixel (u, v) covers full-resolution pixels [f u, f u + f) x [f v, f v + f), so with
pixel i spanning [i, i + 1) the image coordinates just scale by 1 / f. Full-resolution columns and rows beyond the
last whole block are not seen at that level. gsplat's densification normalises the 2D-mean gradients by the
rendered size, so its threshold keeps its meaning at every level.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor


@dataclass(frozen=True)
class ResolutionLevel:
    """The train views at one resolution: uint8 targets [V,h,w,3], intrinsics [V,3,3], the steps it serves."""

    factor: int
    until_step: int  # exclusive; the last level serves every step
    images: Tensor
    Ks: Tensor
    width: int
    height: int


def check_schedule(schedule: Sequence[Sequence[int]], iterations: int, width: int, height: int) -> None:
    """Stop with one line naming ``downscale_schedule`` when its pairs are not increasing steps with integer factors
    >= 2 that shrink as the steps grow and leave at least one pixel."""
    last_step, last_factor = 0, None
    for pair in schedule:
        if len(pair) != 2 or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair):
            raise ValueError(f"train_gs: downscale_schedule entries must be [until_step, factor] integer pairs, "
                             f"got {pair!r}")
        until, factor = pair
        if until <= last_step or until > iterations:
            raise ValueError(f"train_gs: downscale_schedule steps must increase within (0, iterations={iterations}], "
                             f"got {until} after {last_step}")
        if factor < 2 or (last_factor is not None and factor >= last_factor):
            raise ValueError(f"train_gs: downscale_schedule factors must be >= 2 and decrease step by step, got "
                             f"{factor} after {last_factor}")
        if width // factor < 1 or height // factor < 1:
            raise ValueError(f"train_gs: downscale_schedule factor {factor} leaves no pixel of {width}x{height} images")
        last_step, last_factor = until, factor


def downscale_images(images_u8: Tensor, factor: int) -> Tensor:
    """Mean over ``factor x factor`` pixel blocks of uint8 images [V,H,W,3], rounded to uint8 [V,H//f,W//f,3]
    (one view at a time, so no float copy of the whole stack is made)."""
    v, h, w, c = images_u8.shape
    hh, ww = h // factor, w // factor
    out = torch.empty((v, hh, ww, c), dtype=torch.uint8, device=images_u8.device)
    for i in range(v):
        blocks = images_u8[i, :hh * factor, :ww * factor].reshape(hh, factor, ww, factor, c)
        out[i] = blocks.float().mean(dim=(1, 3)).round().clamp(0, 255).to(torch.uint8)
    return out


def downscale_intrinsics(Ks: Tensor, factor: int) -> Tensor:
    """Intrinsics [V,3,3] of the same cameras rendering images ``factor`` times smaller (fx, fy, cx, cy / f)."""
    out = Ks.clone()
    out[:, :2, :] = Ks[:, :2, :] / factor
    return out


def resolution_levels(images_u8: Tensor, Ks: Tensor, width: int, height: int,
                      schedule: Sequence[Sequence[int]], iterations: int) -> list[ResolutionLevel]:
    """The schedule's levels in step order, ending with the full resolution (one level when the schedule is empty).
    Each level's images are computed once, on the device of ``images_u8``."""
    check_schedule(schedule, iterations, width, height)
    levels = [ResolutionLevel(factor, until, downscale_images(images_u8, factor), downscale_intrinsics(Ks, factor),
                              width // factor, height // factor) for until, factor in schedule]
    levels.append(ResolutionLevel(1, iterations, images_u8, Ks, width, height))
    return levels


def level_at(levels: Sequence[ResolutionLevel], step: int) -> ResolutionLevel:
    """The level that serves ``step`` (0-based): the first whose ``until_step`` lies beyond it, else the last."""
    for level in levels:
        if step < level.until_step:
            return level
    return levels[-1]
