"""Open-vocabulary labels: each instance's language feature against the vocabulary's text features."""

from __future__ import annotations

import torch
from torch import Tensor


def label_instances(language: Tensor, text_features: Tensor) -> Tensor:
    """Open-vocabulary label of every instance: argmax_c cos(language_k, text_c); -1 for zero (unseen) rows."""
    sim = torch.nn.functional.normalize(language.float(), dim=-1) @ torch.nn.functional.normalize(
        text_features.float(), dim=-1).T
    seen = language.float().abs().sum(-1) > 0
    return torch.where(seen, sim.argmax(-1), torch.full_like(seen, -1, dtype=torch.long))
