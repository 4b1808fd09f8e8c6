"""Feature fusion of two text-aligned point features (SAS Sec. 3.3, Eq. 6-8) and the ablations of Table 3.

``capability``: Eq. 6 predicted classes, Eq. 7 probability that each model is right (mean of its capabilities for
both predicted classes), Eq. 8 softmax with temperature tau over those probabilities weighting the features.
``add`` (Table 3 "Add"): F_A + F_B; the argmax over text is that of the plain average. ``linear`` (Table 3 "Linear",
our reading of its one sentence): each feature is weighted by its largest cosine to the vocabulary's text features,
w_m = max_k cos(F_m, f_k), and the weights are normalised to sum to one.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

FusionMode = Literal["capability", "linear", "add"]


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def predicted_classes(features: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """Eq. 6: argmax_k (F . f_k^T) per point [P]."""
    return (features @ text_features.T).argmax(-1)


def correctness(capability: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> np.ndarray:
    """Eq. 7: (S[P_A] + S[P_B]) / 2 per point for one model's capability vector S [K]."""
    return (capability[pred_a] + capability[pred_b]) / 2.0


def capability_weights(p_a: np.ndarray, p_b: np.ndarray, tau: float) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 8's softmax over the two models' probabilities at temperature tau (numerically stable; tau > 0)."""
    if tau <= 0:
        raise ValueError(f"the fusion temperature tau must be > 0, got {tau}")
    top = np.maximum(p_a, p_b)
    e_a, e_b = np.exp((p_a - top) / tau), np.exp((p_b - top) / tau)
    return e_a / (e_a + e_b), e_b / (e_a + e_b)


def fuse(f_a: np.ndarray, f_b: np.ndarray, text_features: np.ndarray, mode: FusionMode,
         capability_a: np.ndarray | None = None, capability_b: np.ndarray | None = None,
         tau: float = 0.1) -> np.ndarray:
    """Fused point features [P, D] of two models' features [P, D] (see the module docstring for the modes)."""
    text = unit(text_features)
    if mode == "add":
        return f_a + f_b
    if mode == "linear":
        w_a = (unit(f_a) @ text.T).max(-1).clip(min=0)
        w_b = (unit(f_b) @ text.T).max(-1).clip(min=0)
        total = np.where(w_a + w_b > 0, w_a + w_b, 1.0)
        return (w_a / total)[:, None] * f_a + (w_b / total)[:, None] * f_b
    if mode == "capability":
        if capability_a is None or capability_b is None:
            raise ValueError("capability-guided fusion needs both models' capability vectors")
        pred_a, pred_b = predicted_classes(f_a, text), predicted_classes(f_b, text)
        w_a, w_b = capability_weights(correctness(capability_a, pred_a, pred_b),
                                      correctness(capability_b, pred_a, pred_b), tau)
        return w_a[:, None] * f_a + w_b[:, None] * f_b
    raise ValueError(f"unknown fusion mode {mode!r}; known: capability, linear, add")
