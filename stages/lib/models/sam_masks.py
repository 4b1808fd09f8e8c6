"""SAM automatic masks over the official ``segment_anything`` package.

Two modes:

* :func:`generate_masks` - SAM's automatic mask generator, every mask kept with ``level = -1`` (SAGA-style).
* :func:`generate_level_masks` - LangSplat-style three levels: SAM's multimask output gives three masks per point
  prompt, index 0/1/2 = subpart/part/whole; thresholds and NMS are applied per level and each mask is tagged with
  its level.

Stages resolve the checkpoint through the weights registry first
(``stages.lib.weights.resolve_checkpoint("sam_vit_h")``) and pass the verified path to :func:`build_sam`; a bare
path that does not exist still raises ``WeightsError`` with the fetch command.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from scipy import ndimage
from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry
from segment_anything.modeling import Sam
from segment_anything.utils.amg import (
    MaskData,
    batch_iterator,
    batched_mask_to_box,
    build_point_grid,
    calculate_stability_score,
)
from torchvision.ops import batched_nms

from stages.lib.cli import config_from_params
from stages.lib.models import seeded_random_weights
from stages.lib.weights import require_file

log = logging.getLogger(__name__)

LEVELS = {0: "subpart", 1: "part", 2: "whole"}


TINY_IMAGE_SIZE = 64  # input side of the tiny random-weight SAM (tests)


def tiny_sam() -> Sam:
    """SAM's architecture shrunk for tests (random weights only): a 1-block ViT on 64x64 inputs, 32-d prompt and mask
    decoder; the automatic mask generator and predictor run on it unchanged, in milliseconds per image."""
    from segment_anything.modeling import ImageEncoderViT, MaskDecoder, PromptEncoder, TwoWayTransformer

    dim, grid = 32, TINY_IMAGE_SIZE // 16
    return Sam(
        image_encoder=ImageEncoderViT(img_size=TINY_IMAGE_SIZE, patch_size=16, embed_dim=dim, depth=1, num_heads=2,
                                      out_chans=dim, global_attn_indexes=(0,), window_size=0),
        prompt_encoder=PromptEncoder(embed_dim=dim, image_embedding_size=(grid, grid),
                                     input_image_size=(TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), mask_in_chans=4),
        mask_decoder=MaskDecoder(transformer_dim=dim, num_multimask_outputs=3, iou_head_hidden_dim=dim,
                                 transformer=TwoWayTransformer(depth=1, embedding_dim=dim, mlp_dim=2 * dim,
                                                               num_heads=2)))


def build_sam(arch: str, checkpoint: Path | str | None, device: torch.device | str,
              random_weights: bool = False, tiny: bool = False) -> Sam:
    """SAM ``arch`` (vit_h | vit_l | vit_b) in eval mode on ``device``.

    ``checkpoint=None`` is only accepted with ``random_weights=True`` (tests, benchmarks): the outputs are then
    meaningless. ``tiny=True`` (random weights only) builds ``tiny_sam`` instead of ``arch``.
    """
    if arch not in sam_model_registry:
        raise ValueError(f"unknown SAM arch {arch!r}; one of {sorted(sam_model_registry)}")
    if checkpoint is None and not random_weights:
        raise ValueError("build_sam needs a checkpoint; pass random_weights=True to build an untrained model")
    if tiny and not random_weights:
        raise ValueError("tiny=True builds a random-weight model; pass random_weights=True")
    path = None if checkpoint is None else require_file(checkpoint)
    with seeded_random_weights(path is None):
        sam = tiny_sam() if tiny else sam_model_registry[arch](checkpoint=None)
    if path is None:
        log.warning("SAM %s built with RANDOM WEIGHTS (tiny=%s): its masks are meaningless (benchmark/test use only)",
                    arch, tiny)
    else:
        sam.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return sam.eval().to(device)


@dataclass(frozen=True)
class RawMask:
    """One 2D mask. ``bbox`` is (x, y, w, h) in pixels with ``x + w`` / ``y + h`` exclusive."""

    segmentation: np.ndarray  # bool [H, W]
    predicted_iou: float
    stability_score: float
    area: int
    bbox: tuple[int, int, int, int]
    level: int  # 0 subpart, 1 part, 2 whole, -1 not level-resolved


@dataclass(frozen=True)
class MaskParams:
    """Automatic-mask parameters (SAM's defaults). A threshold <= 0 disables that filter, as in SAM."""

    points_per_side: int = 32
    points_per_batch: int = 64
    pred_iou_thresh: float = 0.88
    stability_score_thresh: float = 0.95
    stability_score_offset: float = 1.0
    box_nms_thresh: float = 0.7
    min_mask_region_area: int = 0
    crop_n_layers: int = 0

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None) -> "MaskParams":
        """Build from a stage's JSON parameters; unknown keys are an error."""
        return config_from_params(cls, params or {}, "SAM mask")


def _as_params(params: MaskParams | Mapping[str, Any] | None) -> MaskParams:
    return params if isinstance(params, MaskParams) else MaskParams.from_dict(params)


def _check_image(image: np.ndarray) -> None:
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image.dtype} {image.shape}")


def _bbox_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return int(cols[0]), int(rows[0]), int(cols[-1] + 1 - cols[0]), int(rows[-1] + 1 - rows[0])


def _drop_small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    """``mask`` without 8-connected components smaller than ``min_area`` (the largest one is always kept)."""
    labels, n = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if n == 0:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= min_area) + 1
    if keep.size == 0:
        keep = np.array([np.argmax(sizes) + 1])
    return np.isin(labels, keep)


def remove_small_regions(mask: np.ndarray, min_area: int) -> np.ndarray:
    """Fill holes and drop islands smaller than ``min_area`` pixels (SAM's post-processing, via scipy)."""
    if min_area <= 0:
        return mask
    filled = ~_drop_small_components(~mask, min_area)
    return _drop_small_components(filled, min_area)


def _to_raw(mask: np.ndarray, iou: float, stability: float, level: int, min_area: int) -> RawMask | None:
    mask = remove_small_regions(mask.astype(bool), min_area)
    area = int(mask.sum())
    if area == 0:
        return None
    return RawMask(mask, float(iou), float(stability), area, _bbox_xywh(mask), level)


def generate_masks(sam: Sam, image: np.ndarray, params: MaskParams | Mapping[str, Any] | None = None) -> list[RawMask]:
    """Every mask of SAM's automatic mask generator ("keep all masks" mode), each with ``level = -1``."""
    _check_image(image)
    p = _as_params(params)
    generator = SamAutomaticMaskGenerator(
        sam, points_per_side=p.points_per_side, points_per_batch=p.points_per_batch,
        pred_iou_thresh=p.pred_iou_thresh, stability_score_thresh=p.stability_score_thresh,
        stability_score_offset=p.stability_score_offset, box_nms_thresh=p.box_nms_thresh,
        crop_n_layers=p.crop_n_layers, min_mask_region_area=0, output_mode="binary_mask")
    with torch.inference_mode():
        records = generator.generate(image)
    masks = (_to_raw(r["segmentation"], r["predicted_iou"], r["stability_score"], -1, p.min_mask_region_area)
             for r in records)
    return [m for m in masks if m is not None]


def _level_batch(predictor: SamPredictor, points: np.ndarray, p: MaskParams) -> list[MaskData]:
    """Decode one batch of point prompts; per level, the masks that pass the IoU and stability thresholds."""
    coords = predictor.transform.apply_coords(points, predictor.original_size)
    coords = torch.as_tensor(coords, dtype=torch.float32, device=predictor.device)[:, None, :]
    labels = torch.ones(coords.shape[0], 1, dtype=torch.int64, device=predictor.device)
    logits, iou_preds, _ = predictor.predict_torch(coords, labels, multimask_output=True, return_logits=True)
    threshold = predictor.model.mask_threshold
    out = []
    for level in LEVELS:
        data = MaskData(logits=logits[:, level], iou_preds=iou_preds[:, level])
        if p.pred_iou_thresh > 0:
            data.filter(data["iou_preds"] > p.pred_iou_thresh)
        data["stability"] = calculate_stability_score(data["logits"], threshold, p.stability_score_offset)
        if p.stability_score_thresh > 0:
            data.filter(data["stability"] >= p.stability_score_thresh)
        masks = data["logits"] > threshold
        del data["logits"]
        data["boxes"] = batched_mask_to_box(masks)
        data["masks"] = masks.cpu()  # full-resolution masks of every batch would crowd GPU memory
        out.append(data)
    return out


def _nms(data: MaskData, iou_thresh: float) -> MaskData:
    if len(data["iou_preds"]):
        boxes = data["boxes"].float()
        data.filter(batched_nms(boxes, data["iou_preds"], torch.zeros_like(boxes[:, 0]), iou_thresh))
    return data


def generate_level_masks(sam: Sam, image: np.ndarray,
                         params: MaskParams | Mapping[str, Any] | None = None) -> list[RawMask]:
    """Subpart/part/whole masks (levels 0/1/2) from a point grid, thresholds and box NMS applied per level.

    Crops are not used (``crop_n_layers`` must be 0): LangSplat runs one grid over the whole image.
    """
    _check_image(image)
    p = _as_params(params)
    if p.crop_n_layers:
        raise ValueError("generate_level_masks does not support crop_n_layers > 0")
    h, w = image.shape[:2]
    points = build_point_grid(p.points_per_side) * np.array([[w, h]])
    predictor = SamPredictor(sam)
    per_level = [MaskData() for _ in LEVELS]
    with torch.inference_mode():
        predictor.set_image(image)
        for (batch,) in batch_iterator(p.points_per_batch, points):
            for acc, data in zip(per_level, _level_batch(predictor, batch, p)):
                acc.cat(data)
        results = []
        for level, data in zip(LEVELS, per_level):
            data = _nms(data, p.box_nms_thresh)
            data.to_numpy()
            for mask, iou, stab in zip(data["masks"], data["iou_preds"], data["stability"]):
                raw = _to_raw(mask, iou, stab, level, p.min_mask_region_area)
                if raw is not None:
                    results.append(raw)
    return results
