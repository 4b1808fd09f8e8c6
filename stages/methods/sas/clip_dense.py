"""The dense 2D model (``kind: clip_dense``, SAS Sec. 3.1's per-pixel-feature model, LSeg's role): open_clip ViT
patch features by MaskCLIP's value path (``stages.lib.models.maskclip``), cosine against CLIP's text features of the
vocabulary prompts, the per-patch logits upsampled bilinearly to the pixels, argmax per pixel (every pixel gets a
class).

Our reading: the image is resized to a short side of ``short_side`` pixels (448 by default, twice CLIP's 224, as
MaskCLIP feeds larger images than CLIP's), the aspect kept and each side rounded to a multiple of the patch size; the
trained positional embedding is resized to that patch grid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stages.lib.weights import ModelChoice
from stages.methods.sas.models2d import DEFAULT_CLIP, ImageInputs, ModelContext, PromptText


def input_size(height: int, width: int, short_side: int, patch: int) -> tuple[int, int]:
    """(H, W) with the short side ~ ``short_side``, the aspect ratio kept, each a multiple of ``patch`` (>= patch)."""
    scale = short_side / min(height, width)
    return tuple(max(patch, int(round(side * scale / patch)) * patch) for side in (height, width))


def dense_classes(patch_features: torch.Tensor, text: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Patch features [h, w, D] and text features [K, D] -> class id [H, W] per pixel of ``size``: cosine logits
    per patch, upsampled bilinearly (half-pixel centres), argmax."""
    feats = F.normalize(patch_features.float(), dim=-1)
    logits = torch.einsum("hwd,kd->khw", feats, F.normalize(text.float(), dim=-1))
    up = F.interpolate(logits[None], size=size, mode="bilinear", align_corners=False)[0]
    return up.argmax(0).numpy().astype(np.int64)


@dataclass
class ClipDenseParams:
    """name; clip: ``{model, random_weights, tiny}`` (default ``clip_vit_b16_laion2b``); short_side of the input."""

    name: str
    clip: dict[str, Any] = field(default_factory=lambda: {"model": DEFAULT_CLIP})
    short_side: int = 448

    def choices(self) -> list[ModelChoice]:
        return [ModelChoice.from_params(self.clip, DEFAULT_CLIP)]

    def build(self, context: ModelContext) -> "ClipDenseModel":
        return ClipDenseModel(self.name, context.clip(self.clip), self.short_side)


class ClipDenseModel:
    """MaskCLIP dense classification of the pixels (see the module docstring)."""

    reads_pixels = True

    def __init__(self, name: str, clip, short_side: int) -> None:
        self.name, self.clip, self.short_side = name, clip, short_side
        self.text_features = PromptText(clip)

    def check(self, vocabulary: list[str]) -> None:
        """Any vocabulary is fine (open vocabulary)."""

    def classify(self, image: ImageInputs, vocabulary: list[str]) -> np.ndarray:
        if image.rgb is None:
            raise ValueError(f"model {self.name!r} (clip_dense) reads pixels; this image has none")
        h, w = image.rgb.shape[:2]
        size = input_size(h, w, self.short_side, self.clip.model.visual.patch_size[0])
        return dense_classes(self.clip.maskclip_features(image.rgb, size), self.text_features(vocabulary), (h, w))
