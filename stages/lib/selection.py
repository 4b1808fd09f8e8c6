"""How a text query selects instances and renders the selection (the query CLI's and the 2D evaluation's knobs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SelectMode = Literal["argmax", "threshold", "vocabulary"]
RenderHow = Literal["visible", "alone"]


@dataclass
class SelectionConfig:
    """Selection and rendering knobs of a text query.

    mode: argmax (the single most relevant instance), threshold (relevance >= ``threshold``), vocabulary (the query
    matches at least as well as every vocabulary entry); how: visible (occlusion respected) or alone (the selected
    Gaussians' whole footprint); ``alpha_threshold`` binarises the rendered selection.
    """

    mode: SelectMode = "argmax"
    threshold: float = 0.25
    how: RenderHow = "visible"
    alpha_threshold: float = 0.5
