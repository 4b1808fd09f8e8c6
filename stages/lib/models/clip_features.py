"""open_clip wrapper: L2-normalised crop, text, vocabulary and dense per-location embeddings in CLIP's joint space.

Dense features (:meth:`ClipModel.dense_features`), the standard training-free choices:

* ViT: the last block's patch tokens after the final LayerNorm (``ln_post``), multiplied by the visual
  projection, i.e. each patch treated like the class token. Weakness: CLIP never trained patch tokens
  to align with text, and the last block's attention is global, so these maps are noisy and poorly
  localised. :meth:`ClipModel.maskclip_features` gives MaskCLIP's value-path features instead
  (``stages.lib.models.maskclip``).
* ConvNeXt (timm trunk): the trunk's final feature map (stride 32), each location passed through the
  trunk head (pooling over a 1x1 cell is the identity, then its LayerNorm) and the open_clip projection,
  i.e. each location treated as a 1x1 image. Coarse: a 256 px input gives an 8x8 grid.

Tests build ``tiny=True`` models: the named architecture's config with the towers shrunk (ViT: 2 layers
of width 64, same patch and image size; timm ConvNeXt trunks swapped for ``convnext_atto``; text: 2 layers
of width 32; embed_dim 32), passed to ``open_clip.create_model`` as ``embed_dim`` / ``vision_cfg`` /
``text_cfg`` overrides, with random weights.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import get_model_preprocess_cfg
from open_clip.timm_model import TimmModel
from open_clip.transformer import VisionTransformer
from torch import Tensor

from stages.lib.models import seeded_random_weights
from stages.lib.models.maskclip import maskclip_dense

log = logging.getLogger(__name__)

TINY_EMBED_DIM = 32
TINY_VIT = {"layers": 2, "width": 64, "head_width": 32}
TINY_TEXT = {"width": 32, "heads": 2, "layers": 2}
TINY_CONVNEXT_TRUNK = "convnext_atto"


def tiny_overrides(arch: str) -> dict:
    """``create_model`` overrides shrinking ``arch`` (a ViT or timm ConvNeXt CLIP) to a tiny model of the same family."""
    cfg = open_clip.get_model_config(arch)
    if cfg is None:
        raise ValueError(f"unknown open_clip architecture {arch!r}")
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    if "hf_model_name" in text:
        raise ValueError(f"no tiny variant for {arch!r}: its text tower is a Hugging Face model")
    timm_name = vision.get("timm_model_name")
    if timm_name is None:
        vision = {**vision, **TINY_VIT}
    elif timm_name.startswith("convnext"):
        vision = {**vision, "timm_model_name": TINY_CONVNEXT_TRUNK}
    else:
        raise ValueError(f"no tiny variant for {arch!r}: timm trunk {timm_name!r} is not a ConvNeXt")
    return {"embed_dim": TINY_EMBED_DIM, "vision_cfg": vision, "text_cfg": {**text, **TINY_TEXT}}


def build_clip(
    arch: str,
    checkpoint: Path | None,
    device: str | torch.device,
    random_weights: bool = False,
    tiny: bool = False,
) -> ClipModel:
    """Build an open_clip model (``ViT-B-16``, ``convnext_base_w``, ...) from a local checkpoint file.

    ``checkpoint=None`` is allowed only with ``random_weights=True`` (tests, dry runs): the embeddings
    are then meaningless. ``tiny=True`` (random weights only) shrinks the towers, see the module docstring.
    """
    if random_weights == (checkpoint is not None):
        raise ValueError("give exactly one of a CLIP checkpoint or random_weights=True")
    if tiny and not random_weights:
        raise ValueError("tiny=True builds a random-weight model; pass random_weights=True")
    if checkpoint is not None and not Path(checkpoint).is_file():
        raise FileNotFoundError(f"CLIP checkpoint not found: {checkpoint}")
    if random_weights:
        log.warning("CLIP %s built with RANDOM WEIGHTS (tiny=%s): its embeddings are meaningless", arch, tiny)
    overrides = tiny_overrides(arch) if tiny else {}
    with seeded_random_weights(random_weights):
        model = open_clip.create_model(
            arch,
            pretrained=None if checkpoint is None else str(checkpoint),
            device=device,
            require_pretrained=checkpoint is not None,
            **overrides,
        )
    embed_dim = overrides.get("embed_dim") or open_clip.get_model_config(arch)["embed_dim"]
    return ClipModel(model, open_clip.get_tokenizer(arch), int(embed_dim))


def batched(n: int, batch_size: int) -> Iterator[slice]:
    """Consecutive slices of at most ``batch_size`` covering ``range(n)``."""
    for start in range(0, n, batch_size):
        yield slice(start, min(start + batch_size, n))


def vit_dense(visual: VisionTransformer, x: Tensor) -> Tensor:
    """[B,h,w,D] patch tokens of the last block after ``ln_post``, through the visual projection."""
    if visual.attn_pool is not None or visual.proj is None:
        raise NotImplementedError("dense features need a ViT with token pooling and a projection")
    out = visual.forward_intermediates(
        x, indices=1, normalize_intermediates=True, intermediates_only=True, output_fmt="NCHW"
    )
    return out["image_intermediates"][-1].permute(0, 2, 3, 1) @ visual.proj


def timm_dense(visual: TimmModel, x: Tensor) -> Tensor:
    """[B,h,w,D] final trunk feature map, each location through the trunk head and projection as a 1x1 image."""
    fmap = visual.trunk.forward_features(x)
    if fmap.ndim != 4:
        raise NotImplementedError("dense features need a timm trunk with a [B,C,h,w] feature map")
    b, c, h, w = fmap.shape
    cells = fmap.permute(0, 2, 3, 1).reshape(b * h * w, c, 1, 1)
    return visual.head(visual.trunk.forward_head(cells)).view(b, h, w, -1)


class ClipModel:
    """An eval-mode open_clip model with its tokenizer; every output is L2-normalised float32 on the CPU."""

    def __init__(self, model: torch.nn.Module, tokenizer: Callable[[list[str]], Tensor], embed_dim: int) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.embed_dim = embed_dim
        self.device = next(model.parameters()).device
        cfg = get_model_preprocess_cfg(model)
        size = cfg["size"]
        self.image_size = (size, size) if isinstance(size, int) else tuple(size)
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)

    def _autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda") if self.device.type == "cuda" else contextlib.nullcontext()

    def _prepare(self, images: np.ndarray, size: tuple[int, int] | None = None) -> Tensor:
        """uint8 [B,h,w,3] -> normalised [B,3,H,W] at ``size`` (default the model's input size; squashed, no centre
        crop)."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [B,h,w,3], got {images.dtype} {images.shape}")
        x = torch.from_numpy(np.ascontiguousarray(images)).to(self.device).permute(0, 3, 1, 2).float() / 255
        x = F.interpolate(x, size=size or self.image_size, mode="bicubic", align_corners=False, antialias=True)
        return (x.clamp(0, 1) - self.mean) / self.std

    @staticmethod
    def _finish(features: Tensor) -> Tensor:
        return F.normalize(features.float(), dim=-1).cpu()

    def encode_crops(self, crops: np.ndarray, batch_size: int = 256) -> Tensor:
        """Embed uint8 [M,h,w,3] crops, each resized to the model's input size: [M,D]."""
        out = [torch.zeros(0, self.embed_dim)]
        with torch.inference_mode(), self._autocast():
            for sl in batched(len(crops), batch_size):
                out.append(self._finish(self.model.encode_image(self._prepare(crops[sl]))))
        return torch.cat(out)

    def encode_text(self, texts: list[str], batch_size: int = 256) -> Tensor:
        """Embed texts: [C,D]."""
        out = [torch.zeros(0, self.embed_dim)]
        with torch.inference_mode(), self._autocast():
            for sl in batched(len(texts), batch_size):
                tokens = self.tokenizer(texts[sl]).to(self.device)
                out.append(self._finish(self.model.encode_text(tokens)))
        return torch.cat(out)

    def encode_vocabulary(self, names: list[str], templates: list[str]) -> Tensor:
        """Per name, the mean of its normalised template embeddings (``template.format(name)``), renormalised: [C,D]."""
        if not templates or any("{}" not in t for t in templates):
            raise ValueError(f"templates must be non-empty and each contain '{{}}', got {templates}")
        texts = [t.format(name) for name in names for t in templates]
        per_template = self.encode_text(texts).view(len(names), len(templates), -1)
        return F.normalize(per_template.mean(dim=1), dim=-1)

    def dense_features(self, image: np.ndarray) -> Tensor:
        """Per-location embeddings [h,w,D] of a uint8 HxWx3 image resized to the model's input size.

        The grid is input size / patch size for a ViT and input size / 32 for a ConvNeXt.
        """
        visual = self.model.visual
        with torch.inference_mode(), self._autocast():
            x = self._prepare(image[None])
            if isinstance(visual, VisionTransformer):
                features = vit_dense(visual, x)
            elif isinstance(visual, TimmModel):
                features = timm_dense(visual, x)
            else:
                raise NotImplementedError(f"dense features not implemented for {type(visual).__name__}")
        return self._finish(features[0])

    def maskclip_features(self, image: np.ndarray, size: tuple[int, int]) -> Tensor:
        """MaskCLIP patch embeddings [H/p, W/p, D] of a uint8 HxWx3 image resized to ``size`` = (H, W), multiples of
        the ViT's patch size p."""
        visual = self.model.visual
        if not isinstance(visual, VisionTransformer):
            raise NotImplementedError(f"MaskCLIP features need a ViT, got {type(visual).__name__}")
        with torch.inference_mode(), self._autocast():
            features = maskclip_dense(visual, self._prepare(image[None], size))
        return self._finish(features[0])
