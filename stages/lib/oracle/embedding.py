"""The oracle embedding space: one fixed unit vector per category name, shared by "images" and "text"."""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stages.lib.crops import pool_in_masks

UNLABELLED = "<unlabelled>"


def category_vector(name: str, dim: int) -> np.ndarray:
    """A deterministic unit vector for a category name (seeded by the name's SHA-256)."""
    return _category_vector(name, dim).copy()


@functools.lru_cache(maxsize=4096)
def _category_vector(name: str, dim: int) -> np.ndarray:
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
    """The most frequent GT category id inside each mask [M,H,W] (ties: the lower id; -1 when unlabelled pixels
    dominate or the mask is empty)."""
    which, pixel = np.nonzero(masks.reshape(masks.shape[0], -1))
    bins = int(max(semantic.max(initial=-1), -1)) + 2
    counts = np.bincount(which * bins + semantic.reshape(-1)[pixel] + 1, minlength=masks.shape[0] * bins)
    counts = counts.reshape(masks.shape[0], bins)
    return np.where(counts.any(1), counts.argmax(1) - 1, -1).astype(np.int64)


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
    index = np.where(semantic >= 0, semantic, len(names))
    dense = pooled_cells(index, table, (max(1, h // stride), max(1, w // stride)))
    dense = add_noise(dense / np.linalg.norm(dense, axis=-1, keepdims=True).clip(1e-8), c.context_noise, rng)
    return pool_in_masks(torch.from_numpy(np.ascontiguousarray(dense)), torch.from_numpy(masks))


def pooled_cells(index: np.ndarray, table: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """torch's adaptive average pooling of the per-pixel vectors ``table[index]`` [H,W,E] onto ``grid`` [gh,gw,E],
    bit for bit, without building the per-pixel map: windows of equal size and equal contents share one pooling,
    and the distinct windows are pooled side by side in one call (each output cell sums only its own window). The
    map is laid out channels first, as torch returns it, so sums over its last axis run in the same order."""
    (gh, gw), dim = grid, table.shape[1]
    ys, hs = _window_ranges(index.shape[0], gh)
    xs, ws = _window_ranges(index.shape[1], gw)
    out = np.empty((dim, gh, gw), np.float32).transpose(1, 2, 0)
    for kh in np.unique(hs):
        rows = np.flatnonzero(hs == kh)
        for kw in np.unique(ws):
            cols = np.flatnonzero(ws == kw)
            windows = index[(ys[rows, None, None, None] + np.arange(kh)[:, None]),
                            (xs[None, cols, None, None] + np.arange(kw))]
            distinct, inverse = np.unique(windows.reshape(-1, kh * kw), axis=0, return_inverse=True)
            pooled = _pool_side_by_side(table, distinct.reshape(-1, kh, kw))
            out[np.ix_(rows, cols)] = pooled[inverse.reshape(rows.size, cols.size)]
    return out


def _window_ranges(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each adaptive-pooling window along one axis (floor / ceil bounds, as torch)."""
    o = np.arange(cells)
    start = o * size // cells
    return start, -(-(o + 1) * size // cells) - start


def _pool_side_by_side(table: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """Average vector of each window of row ids [n,kh,kw] -> [n,E], through adaptive_avg_pool2d on the windows laid
    side by side as one [E, kh, n*kw] map; at least two windows, since a 1x1 output takes torch's mean path."""
    n, kh, kw = windows.shape
    padded = windows if n > 1 else np.concatenate([windows, windows])
    planes = np.take(np.ascontiguousarray(table.T), padded.transpose(1, 0, 2).reshape(kh, -1), axis=1)
    pooled = torch.nn.functional.adaptive_avg_pool2d(torch.from_numpy(planes)[None], (1, len(padded)))
    return pooled[0, :, 0, :n].T.numpy()
