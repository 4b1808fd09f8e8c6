"""Capability sources of the ``capability`` stage (SAS Sec. 3.2), registered as kind ``capability_source``:
``run(models, vocabulary, cfg, context) -> (capability [models, classes], images per class)``.

``oracle``: instead of Stable Diffusion, m synthetic single-object images per class whose object mask is exact (the
pseudo mask); each oracle model (``stages.lib.oracle.class_models``) predicts on the image's label map and Eq. 3-4
score its mask of the class against the pseudo mask. Oracle models read labels, not pixels, so an image is its label
map: one ellipse of the class on an unlabelled background (models that read pixels need the ``diffusion`` source).
The draws use image keys from 10^6 on, apart from the scene views' keys.

``diffusion``: Stable Diffusion 1.5 synthesises m images per class from ``prompt``; the class tokens' cross-attention,
aggregated over UNet layers and steps (Eq. 1-2), is thresholded into a coarse mask, and SAM, prompted with points
inside it, refines it into the pseudo mask. The real 2D models (``clip_dense``, ``sam_clip``) classify the synthesised
pixels, which is what the paper measures; the oracle models cannot read pixels: they read the pseudo mask as the
image's label map (the class inside, unlabelled outside), so with them this source measures what the oracle source
does on SD's object shapes. Our readings: the prompt is "a photo of a {class}" (the paper gives none); SAM's
highest-scoring of its three masks is kept, and the coarse mask itself when SAM returns an empty one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from stages.lib.oracle.class_models import single_object_image
from stages.lib.weights import ModelChoice
from stages.methods import register
from stages.methods.sas.attention import AttentionAggregator, coarse_mask, prompt_points
from stages.methods.sas.capability import CapabilityAccumulator
from stages.methods.sas.models2d import ClassModel, ImageInputs

log = logging.getLogger(__name__)

IMAGE_KEY_OFFSET = 1_000_000


@dataclass
class OracleSourceConfig:
    """images_per_class: m of Eq. 3; width, height of the synthetic images; seed of their shapes."""

    images_per_class: int = 8
    width: int = 64
    height: int = 48
    seed: int = 0


@dataclass
class SourceContext:
    """What a source needs besides its parameters: the device and where model checkpoints live."""

    device: torch.device
    weights_dir: Path | str | None = None


@register("capability_source", "oracle")
def oracle_capability(models: list[ClassModel], vocabulary: list[str], cfg: OracleSourceConfig,
                      context: SourceContext) -> tuple[np.ndarray, np.ndarray]:
    """(capability [models, classes], images per class) from synthetic single-object label maps."""
    if any(m.reads_pixels for m in models):
        raise ValueError(f"the oracle capability source has label maps, no pixels; models "
                         f"{[m.name for m in models if m.reads_pixels]} read pixels (use the diffusion source)")
    acc = CapabilityAccumulator(len(models), len(vocabulary))
    rng = np.random.default_rng(cfg.seed)
    for cls in tqdm(range(len(vocabulary)), desc="capability (oracle)", unit="class", mininterval=5):
        for i in range(cfg.images_per_class):
            mask = single_object_image(cfg.height, cfg.width, rng)
            semantic = np.where(mask, cls, -1)
            key = IMAGE_KEY_OFFSET + cls * cfg.images_per_class + i
            image = ImageInputs(None, semantic, mask.astype(np.int32), key)
            acc.add(cls, mask, [m.classify(image, vocabulary) for m in models])
    return acc.table(), acc.images.astype(np.int32)


@dataclass
class DiffusionSourceConfig:
    """m images per class from ``prompt`` at width x height with ``steps`` DDIM steps and classifier-free guidance;
    Eq. 2 threshold (fraction of the maximum); SAM point prompts; model blocks as in the other stages
    (``{model, random_weights}``; ``random_size: tiny | full`` for random Stable Diffusion weights)."""

    images_per_class: int = 8
    prompt: str = "a photo of a {}"
    width: int = 512
    height: int = 512
    steps: int = 50
    guidance: float = 7.5
    attention_threshold: float = 0.5
    sam_points: int = 3
    seed: int = 0
    diffusion: dict[str, Any] = field(default_factory=lambda: {"model": "stable_diffusion"})
    sam: dict[str, Any] = field(default_factory=lambda: {"model": "sam_vit_h"})


def sam_refine(predictor, image: np.ndarray, points: np.ndarray, coarse: np.ndarray) -> np.ndarray:
    """SAM's best mask for positive ``points`` [n, 2] (x, y) on ``image``; ``coarse`` when SAM gives nothing."""
    if len(points) == 0:
        return coarse
    predictor.set_image(image)
    masks, scores, _ = predictor.predict(point_coords=points, point_labels=np.ones(len(points)), multimask_output=True)
    best = masks[int(np.argmax(scores))]
    return best if best.any() else coarse


@register("capability_source", "diffusion")
def diffusion_capability(models: list[ClassModel], vocabulary: list[str], cfg: DiffusionSourceConfig,
                         context: SourceContext) -> tuple[np.ndarray, np.ndarray]:
    """(capability, images per class) from Stable Diffusion images with attention + SAM pseudo masks."""
    from segment_anything import SamPredictor

    from stages.lib.models.diffusion import latent_size, load_diffusion, synthesise
    from stages.lib.models.sam_masks import build_sam

    sd_choice = ModelChoice.from_params(cfg.diffusion, "stable_diffusion")
    sam_choice = ModelChoice.from_params(cfg.sam, "sam_vit_h")
    sd_dir, sam_ckpt = sd_choice.checkpoint(context.weights_dir), sam_choice.checkpoint(context.weights_dir)
    sd = load_diffusion(sd_dir, context.device, sd_choice.random_weights, cfg.diffusion.get("random_size", "tiny"))
    predictor = SamPredictor(build_sam(sam_choice.arch, sam_ckpt, context.device, sam_choice.random_weights))
    generator = torch.Generator().manual_seed(cfg.seed)
    acc = CapabilityAccumulator(len(models), len(vocabulary))
    t0 = time.perf_counter()
    for cls, name in enumerate(tqdm(vocabulary, desc="capability (diffusion)", unit="class")):
        for i in range(cfg.images_per_class):
            aggregator = AttentionAggregator(latent_size(sd, (cfg.height, cfg.width)))  # Eq. 2
            image = synthesise(sd, cfg.prompt.format(name), name, (cfg.height, cfg.width), cfg.steps, cfg.guidance,
                               generator, aggregator.add)
            attention = torch.nn.functional.interpolate(aggregator.mean()[None, None], size=(cfg.height, cfg.width),
                                                        mode="bilinear", align_corners=False)[0, 0]
            coarse = coarse_mask(attention, cfg.attention_threshold)
            points = prompt_points(attention, coarse, cfg.sam_points)
            pseudo = sam_refine(predictor, image, points, coarse.numpy())
            semantic = np.where(pseudo, cls, -1)
            key = IMAGE_KEY_OFFSET + cls * cfg.images_per_class + i
            inputs = ImageInputs(image, semantic, pseudo.astype(np.int32), key)
            acc.add(cls, pseudo, [m.classify(inputs, vocabulary) for m in models])
    log.info("diffusion source: %.2f s per image", (time.perf_counter() - t0) / max(1, acc.images.sum()))
    return acc.table(), acc.images.astype(np.int32)
