"""The mask 2D model (``kind: sam_clip``, SAS Sec. 3.1's mask-label model, SEEM's role): SAM's automatic masks of the
image (``stages.lib.models.sam_masks``), each labelled with the class whose CLIP text feature is nearest (cosine) to
the CLIP embedding of the mask's masked square crop (``stages.lib.crops``), the labels painted back onto the pixels.

Our readings: where masks overlap, a pixel takes the class of the smallest covering mask (the most specific one; of
equal areas, the mask SAM lists first); pixels no mask covers get no class (-1); the crop blanks everything outside
the mask (LangSplat's crop) at CLIP's 224 px.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from stages.lib.crops import masked_square_crop
from stages.lib.models.sam_masks import MaskParams, build_sam, generate_masks
from stages.lib.weights import ModelChoice
from stages.methods.sas.alignment import UNPREDICTED
from stages.methods.sas.models2d import DEFAULT_CLIP, ImageInputs, ModelContext, PromptText

DEFAULT_SAM = "sam_vit_h"


def paint_masks(masks: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Masks [M, H, W] with a class each [M] -> class id [H, W]: the smallest covering mask's class (ties: the
    lower index), -1 where no mask covers."""
    out = np.full(masks.shape[1:], UNPREDICTED, np.int64)
    areas = masks.reshape(len(masks), -1).sum(1)
    for m in np.lexsort((-np.arange(len(masks)), -areas)):  # largest first, so smaller masks paint over them
        out[masks[m]] = classes[m]
    return out


def crop_classes(crop_embeddings: torch.Tensor, text: torch.Tensor) -> np.ndarray:
    """Each crop's class [M]: the argmax of its cosine to the text features [K, D]."""
    sims = F.normalize(crop_embeddings.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
    return sims.argmax(-1).numpy().astype(np.int64)


@dataclass
class SamClipParams:
    """name; sam: ``{model, random_weights, tiny}`` (default ``sam_vit_h``); clip: as for ``clip_dense``; masks: SAM's
    automatic-mask parameters (``MaskParams``); crop_size of the CLIP crops."""

    name: str
    sam: dict[str, Any] = field(default_factory=lambda: {"model": DEFAULT_SAM})
    clip: dict[str, Any] = field(default_factory=lambda: {"model": DEFAULT_CLIP})
    masks: dict[str, Any] = field(default_factory=dict)
    crop_size: int = 224

    def choices(self) -> list[ModelChoice]:
        return [ModelChoice.from_params(self.sam, DEFAULT_SAM), ModelChoice.from_params(self.clip, DEFAULT_CLIP)]

    def build(self, context: ModelContext) -> "SamClipModel":
        choice = ModelChoice.from_params(self.sam, DEFAULT_SAM)
        sam = build_sam(choice.arch, choice.checkpoint(context.weights_dir), context.device, choice.random_weights,
                        tiny=bool(self.sam.get("tiny", False)))
        return SamClipModel(self.name, sam, context.clip(self.clip), MaskParams.from_dict(self.masks), self.crop_size)


class SamClipModel:
    """SAM masks classified by CLIP crops (see the module docstring)."""

    reads_pixels = True

    def __init__(self, name: str, sam, clip, mask_params, crop_size: int) -> None:
        self.name, self.sam, self.clip, self.mask_params, self.crop_size = name, sam, clip, mask_params, crop_size
        self.text_features = PromptText(clip)

    def check(self, vocabulary: list[str]) -> None:
        """Any vocabulary is fine (open vocabulary)."""

    def classify(self, image: ImageInputs, vocabulary: list[str]) -> np.ndarray:
        if image.rgb is None:
            raise ValueError(f"model {self.name!r} (sam_clip) reads pixels; this image has none")
        masks = [m.segmentation for m in generate_masks(self.sam, image.rgb, self.mask_params)]
        if not masks:
            return np.full(image.rgb.shape[:2], UNPREDICTED, np.int64)
        crops = np.stack([masked_square_crop(image.rgb, m, self.crop_size) for m in masks])
        classes = crop_classes(self.clip.encode_crops(crops), self.text_features(vocabulary))
        return paint_masks(np.stack(masks), classes)
