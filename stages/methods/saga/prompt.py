"""Point-prompt inference (SAGA Sec. 3.5): 2D points + a scale on a view -> 3D query features -> Gaussians.

Query features are the rendered feature map F (Eq. 10) at the prompt pixels, gated by S(s) (Eq. 5); Gaussians are
compared by the cosine of their gated features S(s) * f_g (Eq. 3). Our reading of negative points (the paper names
them without a rule): a Gaussian is selected when its best cosine to the positive queries exceeds the threshold
and is not below its best cosine to the negative queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from stages.methods.saga.gate import gated_cosine


class PromptError(ValueError):
    """A prompt that cannot be answered (point outside the image, scale outside [0, 1], no positive point)."""


Point = tuple[float, float]


@dataclass
class PointPrompt:
    """Positive / negative pixel points (x right, y down, pixels) on ``view`` and the scale s in [0, 1]."""

    view: int
    positive: Sequence[Point]
    scale: float
    negative: Sequence[Point] = field(default_factory=list)

    def check(self, width: int, height: int, num_views: int) -> None:
        """Raise ``PromptError`` naming the problem for an unusable prompt."""
        if not 0 <= self.view < num_views:
            raise PromptError(f"prompt view {self.view} is not a view of the scene (0..{num_views - 1})")
        if not self.positive:
            raise PromptError("the prompt has no positive point: give at least one point on the target")
        if not 0.0 <= float(self.scale) <= 1.0:
            raise PromptError(f"prompt scale {self.scale} is outside [0, 1] (scales are normalised per scene)")
        for kind, points in (("positive", self.positive), ("negative", self.negative)):
            for x, y in points:
                if not (0 <= x < width and 0 <= y < height):
                    raise PromptError(f"{kind} point ({x}, {y}) lies outside the {width}x{height} image of "
                                      f"view {self.view}")


def pixel_features(feature_map: Tensor, points: Sequence[Point]) -> Tensor:
    """Rendered features [n,D] at the pixels containing the points (x, y) of a map [H,W,D]."""
    xy = torch.as_tensor([[int(x), int(y)] for x, y in points], dtype=torch.long, device=feature_map.device)
    return feature_map[xy[:, 1], xy[:, 0]]


def prompt_scores(features: Tensor, gate: Tensor, feature_map: Tensor, prompt: PointPrompt) -> tuple[Tensor, Tensor]:
    """Best gated cosine of every Gaussian [N] to the positive queries and to the negative ones (-inf without)."""
    def best(points: Sequence[Point]) -> Tensor:
        if not points:
            return torch.full((len(features),), float("-inf"), device=features.device)
        q = gate * pixel_features(feature_map, points)
        return gated_cosine(features, gate.expand_as(q), q).amax(1)

    return best(prompt.positive), best(prompt.negative)


def select_gaussians(features: Tensor, gate: Tensor, feature_map: Tensor, prompt: PointPrompt,
                     threshold: float) -> Tensor:
    """Gaussians [N] bool whose best positive cosine > ``threshold`` and >= their best negative cosine."""
    pos, neg = prompt_scores(features, gate, feature_map, prompt)
    return (pos > threshold) & (pos >= neg)
