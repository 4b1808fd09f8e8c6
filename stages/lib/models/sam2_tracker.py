"""SAM2.1 video predictor: propagate seed object masks from one frame through a frame sequence.

Wraps the official ``sam2`` package. Its video loader reads a folder of JPEG frames, so
:func:`propagate_masks` writes the frames (JPEG quality 95) to a temporary folder that it removes
afterwards; the JPEG round trip perturbs pixel values slightly, as it does for every SAM2 user.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from sam2.build_sam import build_sam2_video_predictor
from sam2.sam2_video_predictor import SAM2VideoPredictor

from stages.lib.models import seeded_random_weights

log = logging.getLogger(__name__)

SHORT_NAMES = {
    "sam2.1_hiera_tiny": "configs/sam2.1/sam2.1_hiera_t.yaml",
    "sam2.1_hiera_small": "configs/sam2.1/sam2.1_hiera_s.yaml",
    "sam2.1_hiera_base_plus": "configs/sam2.1/sam2.1_hiera_b+.yaml",
    "sam2.1_hiera_large": "configs/sam2.1/sam2.1_hiera_l.yaml",
}
# Hiera downsamples by 32 overall; the memory attention's RoPE grid is image_size / 16.
IMAGE_SIZE_MULTIPLE = 32
BACKBONE_STRIDE = 16
JPEG_QUALITY = 95


def resolve_config(arch: str) -> str:
    """Map a short name (``sam2.1_hiera_tiny|small|base_plus|large``) to its config; pass config names through."""
    return SHORT_NAMES.get(arch, arch)


def image_size_overrides(image_size: int) -> list[str]:
    """Hydra overrides that run the model at ``image_size`` (a multiple of 32) instead of 1024."""
    if image_size <= 0 or image_size % IMAGE_SIZE_MULTIPLE:
        raise ValueError(f"SAM2 image_size must be a positive multiple of {IMAGE_SIZE_MULTIPLE}, got {image_size}")
    grid = image_size // BACKBONE_STRIDE
    attention = "++model.memory_attention.layer"
    return [
        f"++model.image_size={image_size}",
        f"{attention}.self_attention.feat_sizes=[{grid},{grid}]",
        f"{attention}.cross_attention.feat_sizes=[{grid},{grid}]",
    ]


def build_sam2_video(
    arch: str,
    checkpoint: Path | None,
    device: str | torch.device,
    random_weights: bool = False,
    image_size: int | None = None,
) -> SAM2VideoPredictor:
    """Build a SAM2.1 video predictor in eval mode.

    ``checkpoint=None`` is allowed only with ``random_weights=True`` (tests, dry runs); the outputs of
    such a model are meaningless. ``image_size`` (a multiple of 32, default 1024 from the config)
    shrinks the model's input resolution, e.g. 128 for fast CPU tests.
    """
    if random_weights == (checkpoint is not None):
        raise ValueError("give exactly one of a SAM2 checkpoint or random_weights=True")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"SAM2 checkpoint not found: {checkpoint}")
    if random_weights:
        log.warning("SAM2 %s built with RANDOM WEIGHTS: its masks are meaningless", arch)
    overrides = image_size_overrides(image_size) if image_size is not None else []
    with seeded_random_weights(random_weights):
        return build_sam2_video_predictor(
            resolve_config(arch),
            ckpt_path=None if checkpoint is None else str(checkpoint),
            device=device,
            hydra_overrides_extra=overrides,
        )


def write_jpeg_frames(frames: np.ndarray, folder: Path) -> None:
    """Write frames as ``00000.jpg, 00001.jpg, ...``, the layout SAM2's video loader reads."""
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:05d}.jpg", quality=JPEG_QUALITY)


def label_map(obj_ids: list[int], logits: torch.Tensor) -> np.ndarray:
    """Per-pixel object id from mask logits [K,1,H,W]: the highest positive logit wins, -1 where none is positive."""
    best, idx = logits[:, 0].float().max(dim=0)
    ids = torch.as_tensor(obj_ids, dtype=torch.int32, device=idx.device)
    return torch.where(best > 0, ids[idx], -1).to(torch.int32).cpu().numpy()


def _check_inputs(frames: np.ndarray, seed_masks: dict[int, np.ndarray], seed_frame: int) -> None:
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 [V,H,W,3], got {frames.dtype} {frames.shape}")
    if not 0 <= seed_frame < len(frames):
        raise ValueError(f"seed_frame {seed_frame} outside 0..{len(frames) - 1}")
    for obj_id, mask in seed_masks.items():
        if obj_id < 0:
            raise ValueError(f"object ids must be >= 0 (-1 means background), got {obj_id}")
        if mask.shape != frames.shape[1:3]:
            raise ValueError(f"seed mask of object {obj_id} has shape {mask.shape}, frames are {frames.shape[1:3]}")


def _autocast(device: torch.device) -> contextlib.AbstractContextManager:
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def staged_video(predictor: SAM2VideoPredictor, frames: np.ndarray) -> Iterator[dict]:
    """SAM2 inference state for ``frames`` (uint8 [V,H,W,3]), staged through a temporary JPEG folder."""
    with tempfile.TemporaryDirectory() as tmp, torch.inference_mode(), _autocast(predictor.device):
        write_jpeg_frames(frames, Path(tmp))
        yield predictor.init_state(tmp, offload_video_to_cpu=True)


def propagate_staged(
    predictor: SAM2VideoPredictor,
    state: dict,
    seed_masks: dict[int, np.ndarray],
    seed_frame: int,
    labels: np.ndarray,
) -> np.ndarray:
    """Add the seed masks to a fresh ``state`` and fill ``labels`` [V,H,W] forwards and backwards from ``seed_frame``."""
    with torch.inference_mode(), _autocast(predictor.device):
        for obj_id, mask in seed_masks.items():
            predictor.add_new_mask(state, seed_frame, int(obj_id), np.asarray(mask, dtype=bool))
        for reverse in (False, True):
            for frame_idx, obj_ids, logits in predictor.propagate_in_video(
                state, start_frame_idx=seed_frame, reverse=reverse
            ):
                labels[frame_idx] = label_map(list(obj_ids), logits)
    return labels


def propagate_masks(
    predictor: SAM2VideoPredictor,
    frames: np.ndarray,
    seed_masks: dict[int, np.ndarray],
    seed_frame: int = 0,
) -> np.ndarray:
    """Track seed masks (object id -> bool HxW on ``seed_frame``) forwards and backwards through ``frames``.

    ``frames`` is uint8 [V,H,W,3]. Returns int32 [V,H,W] object ids, -1 where no object is predicted;
    where objects overlap, the one with the highest mask logit wins.
    """
    _check_inputs(frames, seed_masks, seed_frame)
    labels = np.full(frames.shape[:3], -1, dtype=np.int32)
    if not seed_masks:
        return labels
    with staged_video(predictor, frames) as state:
        return propagate_staged(predictor, state, seed_masks, seed_frame, labels)
