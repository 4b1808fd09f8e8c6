"""The 2D open-vocabulary models SAS integrates (Sec. 3.1): one interface over oracle and real per-pixel models.

A model gets one image's inputs (:class:`ImageInputs`: the RGB pixels, the GT class and instance maps where known,
a key naming the image) and returns a class id per pixel over the vocabulary (-1: no class). Each model reads what it
needs: the oracle models (``kind: oracle``, the default; ``stages.lib.oracle.class_models``) read the label maps,
the real ones the pixels: ``clip_dense`` (open_clip ViT dense features, MaskCLIP, ``stages.methods.sas.clip_dense``)
and ``sam_clip`` (SAM masks classified by CLIP, ``stages.methods.sas.sam_clip``). Model parameters are
``{name, kind, ...}`` with the kind's own keys.

The shared text encoder of the alignment (Sec. 3.1, Sec. 3.3's F_text) is CLIP's when any model is real (the first
real model's CLIP, prompt "a {class} in a scene"), and the oracle embedding of the class names when all are oracle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol

import numpy as np
import torch

from stages.lib.cli import config_from_params
from stages.lib.oracle.class_models import OracleClassModel
from stages.lib.oracle.embedding import encode_names
from stages.lib.weights import ModelChoice
from stages.methods.sas.alignment import prompts

ORACLE = "oracle"
DEFAULT_CLIP = "clip_vit_b16_laion2b"


@dataclass(frozen=True)
class ImageInputs:
    """One image: rgb uint8 [H, W, 3] (None where only labels exist), GT ``semantic`` ids into the vocabulary and
    ``instance`` ids [H, W] (None where unknown), ``key`` naming the image (reproducible draws)."""

    rgb: np.ndarray | None
    semantic: np.ndarray | None
    instance: np.ndarray | None
    key: int


class ClassModel(Protocol):
    """A per-pixel open-vocabulary class predictor."""

    name: str
    reads_pixels: bool

    def check(self, vocabulary: list[str]) -> None:
        """Stop with a clear error, before any work, when the model cannot predict over ``vocabulary``."""

    def classify(self, image: ImageInputs, vocabulary: list[str]) -> np.ndarray:
        """Class ids [H, W] into ``vocabulary`` (-1: no class)."""


@dataclass
class OracleModel:
    """An oracle model behind the common interface: it reads the GT label maps, no pixels."""

    oracle: OracleClassModel
    reads_pixels: bool = False

    @property
    def name(self) -> str:
        return self.oracle.name

    def check(self, vocabulary: list[str]) -> None:
        self.oracle.targets(vocabulary)

    def classify(self, image: ImageInputs, vocabulary: list[str]) -> np.ndarray:
        if image.semantic is None or image.instance is None:
            raise ValueError(f"oracle model {self.name!r} reads GT label maps; this image has none")
        return self.oracle.predict(image.semantic, image.instance, vocabulary, image.key)


@dataclass
class ModelContext:
    """Where real models load from: the device, the checkpoint directory (None: ``$OVGS_WEIGHTS`` or ``weights/``),
    and the CLIP models already built (two models naming the same CLIP share it)."""

    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    weights_dir: Path | str | None = None
    clips: dict[tuple[ModelChoice, bool], Any] = field(default_factory=dict)

    def clip(self, block: Mapping[str, Any]):
        """The ``ClipModel`` of a ``{model, random_weights, tiny}`` block (default ``clip_vit_b16_laion2b``)."""
        from stages.lib.models.clip_features import build_clip

        choice = ModelChoice.from_params(block, DEFAULT_CLIP)
        key = (choice, bool(block.get("tiny", False)))
        if key not in self.clips:
            self.clips[key] = build_clip(choice.arch, choice.checkpoint(self.weights_dir), self.device,
                                         random_weights=choice.random_weights, tiny=key[1])
        return self.clips[key]


class PromptText:
    """A CLIP's unit text features [K, D] of the vocabulary's prompts (Sec. 4.1's "a {class} in a scene"), computed
    once per vocabulary."""

    def __init__(self, clip) -> None:
        self.clip = clip
        self.cache: dict[tuple[str, ...], torch.Tensor] = {}

    def __call__(self, vocabulary: list[str]) -> torch.Tensor:
        key = tuple(vocabulary)
        if key not in self.cache:
            self.cache[key] = self.clip.encode_text(prompts(vocabulary)).float()
        return self.cache[key]


def real_kinds() -> dict[str, Any]:
    """{kind: its parameter class}; each class has ``choices()`` (its model blocks) and ``build(context)``."""
    from stages.methods.sas.clip_dense import ClipDenseParams
    from stages.methods.sas.sam_clip import SamClipParams

    return {"clip_dense": ClipDenseParams, "sam_clip": SamClipParams}


def parse_model(params: Mapping[str, Any]):
    """The parameters of one model: an ``OracleClassModel`` or a real kind's parameter object."""
    kind = params.get("kind", ORACLE)
    rest = {k: v for k, v in params.items() if k != "kind"}
    if kind == ORACLE:
        return OracleClassModel.from_params(rest)
    kinds = real_kinds()
    if kind not in kinds:
        raise ValueError(f"2D model {params.get('name')!r}: kind {kind!r} unknown; known: {[ORACLE, *kinds]}")
    return config_from_params(kinds[kind], rest, f"2D model {params.get('name')!r} ({kind})")


def build_models(params: list[Mapping[str, Any]], context: ModelContext) -> list[ClassModel]:
    """The configured models; every checkpoint is checked (a clear ``WeightsError`` naming what to fetch) before any
    model is loaded."""
    parsed = [parse_model(p) for p in params]
    for p in parsed:
        if not isinstance(p, OracleClassModel):
            for choice in p.choices():
                choice.checkpoint(context.weights_dir)
    return [OracleModel(p) if isinstance(p, OracleClassModel) else p.build(context) for p in parsed]


def alignment_text(models: list[ClassModel], vocabulary: list[str], oracle_dim: int) -> np.ndarray:
    """The shared text encoder's features [K, D] of the vocabulary (see the module docstring)."""
    real = [m for m in models if m.reads_pixels]
    if not real:
        return encode_names(vocabulary, oracle_dim).numpy().astype(np.float64)
    return real[0].text_features(vocabulary).numpy().astype(np.float64)
