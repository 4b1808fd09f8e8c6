"""Point-prompt inference (SAGA Sec. 3.5): 2D points + a scale on a view -> 3D query features -> Gaussians.

Query features are the rendered feature map F (Eq. 10) at the prompt pixels, gated by S(s) (Eq. 5); Gaussians are
compared by the cosine of their gated features S(s) * f_g (Eq. 3). Our reading of negative points (the paper names
them without a rule): a Gaussian is selected when its best cosine to the positive queries exceeds the threshold
and is not below its best cosine to the negative queries.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor


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
    """Rendered features [n,D] at the pixels containing the points (x, y) of a map [H,W,D] (one host-to-device copy
    of the flat pixel indices)."""
    width = feature_map.shape[1]
    flat = torch.tensor([int(y) * width + int(x) for x, y in points], dtype=torch.long, device=feature_map.device)
    return feature_map.reshape(-1, feature_map.shape[-1])[flat]


class PromptIndex:
    """A scene's affinity features prepared once for point prompts (Sec. 3.5), so that a prompt costs one matrix
    product: the unit features f_n / ||f_n|| and their squares side by side, [N, 2D].

    For the gate S = S(s) and the gated queries q_b = S * F(p_b) (Eq. 5), the gated cosine of Eq. 3 is
    cos(S * f_n, q_b) = f_n . (S * q_b / ||q_b||) / sqrt(f_n^2 . S^2): the numerators of every query and the squared
    gated norm come out of one product [N, 2D] @ [2D, B + 1]. The cosine does not depend on ||f_n||, so the unit
    features give the same scores with a bounded denominator.
    """

    def __init__(self, features: Tensor, gate: Callable[[float], Tensor]) -> None:
        """``gate(s)`` returns S(s) [D] on the features' device (``ScaleGate.at``)."""
        unit = torch.nn.functional.normalize(features.detach().float(), dim=-1)
        self.stacked = torch.cat([unit, unit * unit], dim=1).contiguous()   # [N, 2D]
        self.gate = gate

    def __len__(self) -> int:
        return int(self.stacked.shape[0])

    def scores(self, feature_map: Tensor, prompt: PointPrompt) -> tuple[Tensor, Tensor | None]:
        """Best gated cosine of every Gaussian [N] to the positive queries and to the negative ones (None without)."""
        n_pos = len(prompt.positive)
        queries = pixel_features(feature_map, [*prompt.positive, *prompt.negative]).float()  # the one copy first
        s = self.gate(prompt.scale)                                               # S(s) [D]
        q = torch.nn.functional.normalize(s * queries, dim=-1)
        weights = torch.block_diag((s * q).T, (s * s)[:, None])                  # [2D, B + 1]
        prod = self.stacked @ weights                                             # [N, B + 1]
        norm = prod[:, -1].sqrt().clamp_min(1e-12)
        # x -> x / norm is monotone, so the best cosine is the best numerator over the norm
        pos = prod[:, :n_pos].amax(1) / norm
        neg = prod[:, n_pos:-1].amax(1) / norm if prompt.negative else None
        return pos, neg

    def select(self, feature_map: Tensor, prompt: PointPrompt, threshold: float) -> Tensor:
        """Gaussians [N] bool whose best positive cosine > ``threshold`` and >= their best negative cosine."""
        pos, neg = self.scores(feature_map, prompt)
        keep = pos > threshold
        return keep if neg is None else keep & (pos >= neg)


def reference_scores(features: Tensor, gate: Tensor, feature_map: Tensor, prompt: PointPrompt
                     ) -> tuple[Tensor, Tensor]:
    """Eq. 3 and 5 written out, the reference ``PromptIndex`` is tested against: best cosine of S * f_n to the
    positive and to the negative queries S * F(p) (-inf without negatives)."""
    gated_features = torch.nn.functional.normalize(gate * features.float(), dim=-1)

    def best(points: Sequence[Point]) -> Tensor:
        if not points:
            return torch.full((len(features),), float("-inf"), device=features.device)
        q = torch.nn.functional.normalize(gate * pixel_features(feature_map, points).float(), dim=-1)
        return (gated_features @ q.T).amax(1)

    return best(prompt.positive), best(prompt.negative)
