"""Oracle per-pixel open-vocabulary models for scenes with ground truth: each predicts the GT category of every
pixel, except that it confuses chosen classes at chosen rates, like a real 2D model with per-class reliability.

A confusion is systematic, as real models' are (SEEM reads a picture as a wall): an object of a confused class is
predicted as one fixed other class (``into``, else one drawn per model and class from the vocabulary), decided per
(object, image) with probability ``rate``; the draws of one model on one image come from ``(seed, image key)``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


@dataclass
class OracleClassModel:
    """name; confuse: {class name: rate in [0, 1]}; into: optional {class name: the class it is mistaken for}."""

    name: str
    confuse: dict[str, float] = field(default_factory=dict)
    into: dict[str, str] = field(default_factory=dict)
    seed: int = 0

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "OracleClassModel":
        known = {"name", "confuse", "into", "seed"}
        if set(params) - known:
            raise ValueError(f"oracle model parameters {sorted(set(params) - known)} unknown; known: {sorted(known)}")
        model = cls(**params)
        bad = {k: v for k, v in model.confuse.items() if not 0.0 <= float(v) <= 1.0}
        if bad:
            raise ValueError(f"oracle model {model.name!r}: confusion rates must lie in [0, 1], got {bad}")
        return model

    def targets(self, vocabulary: list[str]) -> dict[int, int]:
        """{confused class id: the class id it is mistaken for}; unknown class names are an error."""
        unknown = sorted((set(self.confuse) | set(self.into) | set(self.into.values())) - set(vocabulary))
        if unknown:
            raise ValueError(f"oracle model {self.name!r} names classes {unknown} outside the vocabulary")
        out = {}
        for name in self.confuse:
            if name in self.into:
                out[vocabulary.index(name)] = vocabulary.index(self.into[name])
            else:
                others = [i for i, v in enumerate(vocabulary) if v != name]
                digest = hashlib.sha256(f"{self.seed}/{self.name}/{name}".encode()).digest()
                out[vocabulary.index(name)] = others[int.from_bytes(digest[:4], "little") % len(others)]
        return out

    def predict(self, semantic: np.ndarray, instance: np.ndarray, vocabulary: list[str], key: int) -> np.ndarray:
        """Per-pixel class ids [H, W] (-1 where the GT is unlabelled) for one image with GT ``semantic`` (ids into
        ``vocabulary``) and ``instance`` maps; ``key`` names the image (its draws are reproducible)."""
        pred = semantic.astype(np.int64).copy()
        rng = np.random.default_rng([self.seed, int.from_bytes(self.name.encode()[:8].ljust(8, b"\0"), "little"),
                                     int(key)])
        targets = self.targets(vocabulary)
        rates = {vocabulary.index(n): float(r) for n, r in self.confuse.items()}
        for obj in np.unique(instance):
            inside = instance == obj
            ids, counts = np.unique(semantic[inside], return_counts=True)
            cls = int(ids[counts.argmax()])
            if cls in targets and rng.random() < rates[cls]:
                pred[inside & (semantic == cls)] = targets[cls]
        return pred


def single_object_image(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A synthetic single-object image's exact object mask [H, W]: an ellipse of random centre and radii covering
    roughly 10-40 % of the image."""
    yy, xx = np.mgrid[0:height, 0:width] + 0.5
    cy, cx = rng.uniform(0.35, 0.65) * height, rng.uniform(0.35, 0.65) * width
    ry, rx = rng.uniform(0.2, 0.4) * height, rng.uniform(0.2, 0.4) * width
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0
