"""Model alignment via text (SAS Sec. 3.1): a model's per-pixel class prediction becomes the shared text encoder's
embedding of the predicted class name, so models with different embedding spaces meet in one space."""

from __future__ import annotations

import numpy as np

UNPREDICTED = -1  # pixels a model leaves without a class get a zero feature (they vote for nothing)

PROMPT_TEMPLATE = "a {} in a scene"  # the prompt engineering SAS takes from OpenScene (Sec. 4.1)


def prompts(vocabulary: list[str], template: str = PROMPT_TEMPLATE) -> list[str]:
    """The text each class name is encoded as."""
    return [template.format(name) for name in vocabulary]


def unit_text(text_features: np.ndarray) -> np.ndarray:
    """The shared text encoder's features of the vocabulary [K, D], each normalised to unit length."""
    return text_features / np.linalg.norm(text_features, axis=-1, keepdims=True)


def check_class_ids(prediction: np.ndarray, num_classes: int) -> None:
    """Class ids must lie in [-1, K - 1] (-1: unpredicted)."""
    if prediction.size and (prediction.max() >= num_classes or prediction.min() < UNPREDICTED):
        raise ValueError(f"class ids must lie in [-1, {num_classes - 1}], got [{prediction.min()}, {prediction.max()}]")


def align_by_text(prediction: np.ndarray, text_features: np.ndarray) -> np.ndarray:
    """Sec. 3.1: per-pixel class ids [...] (-1 none) -> the predicted class's unit text feature [..., D] (0 for -1).

    ``text_features`` [K, D] are the shared text encoder's features of the vocabulary (normalised here).
    """
    text = unit_text(text_features)
    table = np.concatenate([text, np.zeros((1, text.shape[1]), text.dtype)])  # row K = unpredicted
    check_class_ids(prediction, len(text))
    return table[np.where(prediction < 0, len(text), prediction)]
