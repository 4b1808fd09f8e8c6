"""Open-vocabulary labels (each instance's language feature against the vocabulary's text features) and text
embeddings of queries."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def label_instances(language: Tensor, text_features: Tensor) -> Tensor:
    """Open-vocabulary label of every instance: argmax_c cos(language_k, text_c); -1 for zero (unseen) rows."""
    sim = torch.nn.functional.normalize(language.float(), dim=-1) @ torch.nn.functional.normalize(
        text_features.float(), dim=-1).T
    seen = language.float().abs().sum(-1) > 0
    return torch.where(seen, sim.argmax(-1), torch.full_like(seen, -1, dtype=torch.long))


TextEncoder = Callable[[list[str]], Tensor]


class QueryError(KeyError):
    """A text that is neither in the stored vocabulary nor embeddable (no encoder given)."""


class TextEmbedder:
    """Unit text embeddings [E]: a stored vocabulary entry's (case-insensitive), else the encoder's (cached)."""

    def __init__(self, text_features: Tensor, vocabulary: list[str], encoder: TextEncoder | None = None) -> None:
        self.text_features = torch.nn.functional.normalize(text_features.float(), dim=-1)
        self.encoder = encoder
        self._index = {name.strip().lower(): i for i, name in enumerate(vocabulary)}
        self._cache: dict[str, Tensor] = {}

    def __call__(self, text: str) -> Tensor:
        key = text.strip().lower()
        if key in self._index:
            return self.text_features[self._index[key]]
        if key not in self._cache:
            if self.encoder is None:
                raise QueryError(f"{text!r} is not in the stored vocabulary and no text encoder was given")
            emb = self.encoder([text])[0].float().to(self.text_features.device)
            self._cache[key] = torch.nn.functional.normalize(emb, dim=-1)
        return self._cache[key]
