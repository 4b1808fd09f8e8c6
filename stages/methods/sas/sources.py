"""Capability sources of the ``capability`` stage (SAS Sec. 3.2), registered as kind ``capability_source``.

``oracle``: instead of Stable Diffusion, m synthetic single-object images per class whose object mask is exact (the
pseudo mask); each oracle model (``stages.lib.oracle.class_models``) predicts on the image's label map and Eq. 3-4
score its mask of the class against the pseudo mask. Oracle models read labels, not pixels, so an image is its label
map: one ellipse of the class on an unlabelled background. The draws use image keys from 10^6 on, apart from the
scene views' keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tqdm import tqdm

from stages.lib.oracle.class_models import OracleClassModel, single_object_image
from stages.methods import register
from stages.methods.sas.capability import CapabilityAccumulator

IMAGE_KEY_OFFSET = 1_000_000


@dataclass
class OracleSourceConfig:
    """images_per_class: m of Eq. 3; width, height of the synthetic images; seed of their shapes."""

    images_per_class: int = 8
    width: int = 64
    height: int = 48
    seed: int = 0


@register("capability_source", "oracle")
def oracle_capability(models: list[OracleClassModel], vocabulary: list[str],
                      cfg: OracleSourceConfig) -> tuple[np.ndarray, np.ndarray]:
    """(capability [models, classes], images per class) from synthetic single-object label maps."""
    acc = CapabilityAccumulator(len(models), len(vocabulary))
    rng = np.random.default_rng(cfg.seed)
    for cls in tqdm(range(len(vocabulary)), desc="capability (oracle)", unit="class", mininterval=5):
        for i in range(cfg.images_per_class):
            mask = single_object_image(cfg.height, cfg.width, rng)
            semantic = np.where(mask, cls, -1)
            key = IMAGE_KEY_OFFSET + cls * cfg.images_per_class + i
            acc.add(cls, mask, [m.predict(semantic, mask.astype(np.int32), vocabulary, key) for m in models])
    return acc.table(), acc.images.astype(np.int32)
