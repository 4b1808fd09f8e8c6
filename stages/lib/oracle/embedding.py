"""The oracle embedding space: one fixed unit vector per category name, shared by "images" and "text"."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stages.lib.crops import pool_in_masks

UNLABELLED = "<unlabelled>"


def category_vector(name: str, dim: int) -> np.ndarray:
    """A deterministic unit vector for a category name (seeded by the name's SHA-256)."""
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def encode_names(names: list[str], dim: int) -> Tensor:
    """The oracle text encoder: [C, dim] unit vectors."""
    return torch.from_numpy(np.stack([category_vector(n, dim) for n in names]))


@dataclass
class FeatureCorruption:
    """confusion: probability that a mask's category is replaced by another vocabulary entry (uniformly);
    noise: norm of isotropic Gaussian noise added to a crop feature before renormalising (expected cosine to
    the clean vector 1 / sqrt(1 + noise^2)); context_noise: the same for every cell of the dense feature map."""

    confusion: float = 0.0
    noise: float = 0.0
    context_noise: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.confusion <= 1.0:
            raise ValueError(f"feature corruption confusion must lie in [0, 1], got {self.confusion}")
        if self.noise < 0 or self.context_noise < 0:
            raise ValueError("feature corruption noise levels must be >= 0")


def add_noise(v: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors plus isotropic noise of expected norm ``level``, renormalised."""
    if level <= 0:
        return v
    noisy = v + rng.standard_normal(v.shape).astype(np.float32) * level / np.sqrt(v.shape[-1])
    return noisy / np.linalg.norm(noisy, axis=-1, keepdims=True)


def majority_category(semantic: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The most frequent GT category id inside each mask [M,H,W] (-1 when unlabelled pixels dominate)."""
    out = np.full(masks.shape[0], -1, np.int64)
    for i, m in enumerate(masks):
        ids, counts = np.unique(semantic[m], return_counts=True)
        if ids.size:
            out[i] = ids[counts.argmax()]
    return out


def crop_features(categories: np.ndarray, names: list[str], vocabulary: list[str], dim: int,
                  c: FeatureCorruption, rng: np.random.Generator) -> np.ndarray:
    """Oracle crop features for masks of GT category ids ``categories`` (into ``names``), with confusion and noise."""
    labels = [names[k] if k >= 0 else UNLABELLED for k in categories]
    for i, name in enumerate(labels):
        if name in vocabulary and len(vocabulary) > 1 and rng.random() < c.confusion:
            others = [v for v in vocabulary if v != name]
            labels[i] = others[int(rng.integers(len(others)))]
    clean = np.stack([category_vector(n, dim) for n in labels]) if labels else np.zeros((0, dim), np.float32)
    return add_noise(clean, c.noise, rng)


def context_features(semantic: np.ndarray, masks: np.ndarray, names: list[str], dim: int, stride: int,
                     c: FeatureCorruption, rng: np.random.Generator) -> Tensor:
    """Oracle context features: a coarse dense map (one cell per ``stride`` pixels, the mean category vector of
    its pixels, like a CLIP patch grid) pooled inside each mask, as the real dense features are."""
    h, w = semantic.shape
    table = np.stack([category_vector(n, dim) for n in names] + [category_vector(UNLABELLED, dim)])
    per_pixel = table[np.where(semantic >= 0, semantic, len(names))]
    gh, gw = max(1, h // stride), max(1, w // stride)
    cells = torch.from_numpy(per_pixel).permute(2, 0, 1)[None]
    dense = torch.nn.functional.adaptive_avg_pool2d(cells, (gh, gw))[0].permute(1, 2, 0).numpy()
    dense = add_noise(dense / np.linalg.norm(dense, axis=-1, keepdims=True).clip(1e-8), c.context_noise, rng)
    return pool_in_masks(torch.from_numpy(np.ascontiguousarray(dense)), torch.from_numpy(masks))
