"""A trained SAGA field: Gaussians, smoothed affinity features and the scale gate, with the renderings that prompts,
decomposition and the vote graph need (the Eq. 10 feature map of a view, a selection rendered on a view)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.objective_state import load_objective_state
from stages.lib.render import render
from stages.lib.rendered_depth import Camera, activated_geometry, rendered_depth
from stages.lib.store import StoreError, read_store
from stages.methods.saga.gate import ScaleGate
from stages.methods.saga.prompt import PointPrompt, PromptIndex

GATE_KEYS = ("gate.linear.weight", "gate.linear.bias")


@dataclass
class SagaField:
    """Activated Gaussians (``means``, ``quats``, ``scales``, ``opacities``), affinity features [N,D], scale gate."""

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    features: Tensor
    gate: ScaleGate
    _prompt_index: PromptIndex | None = field(default=None, init=False, repr=False)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> SagaField:
        """From a ``feature_gaussians`` store trained with the ``saga`` objective (its gate in ``objective_state``)."""
        store = read_store("feature_gaussians", path)
        state = load_objective_state(store)
        if not all(k in state for k in GATE_KEYS):
            raise StoreError(f"{path}: no scale gate in its objective_state; was it trained with the saga objective?")
        gate = ScaleGate(int(store.sizes["D"]))
        gate.load_state_dict({k.removeprefix("gate."): torch.as_tensor(state[k]) for k in GATE_KEYS})
        a = activated({k: torch.from_numpy(store.load(k)).to(device) for k in PARAM_KEYS})
        return cls(a["means"], a["quats"], a["scales"], a["opacities"],
                   torch.from_numpy(store.load("features")).to(device), gate.to(device).eval())

    def __len__(self) -> int:
        return int(self.means.shape[0])

    def _render(self, colors: Tensor, camera: Camera) -> Tensor:
        viewmat = torch.from_numpy(camera.world_to_camera).float().to(self.means.device)[None]
        k = torch.from_numpy(camera.intrinsics).float().to(self.means.device)[None]
        out, _, _ = render(self.means, self.quats, self.scales, self.opacities, colors, viewmat, k, camera.width,
                           camera.height, sh_degree=None)
        return out[0]

    def depth(self, camera: Camera, min_alpha: float = 0.5) -> Tensor:
        """Expected z-depth [H,W] of a view (``rendered_depth``)."""
        return rendered_depth(activated_geometry(self), camera, min_alpha)

    @torch.no_grad()
    def feature_map(self, camera: Camera) -> Tensor:
        """Eq. 10: F(p) of a view [H,W,D], the rendering of the unit-norm affinity features."""
        return self._render(torch.nn.functional.normalize(self.features, dim=-1), camera)

    @torch.no_grad()
    def render_selection(self, selected: Tensor, camera: Camera, alpha_threshold: float = 0.5) -> Tensor:
        """The selection's visible mask [H,W] bool: the rendered indicator of the selected Gaussians (occlusion by
        the others respected) above ``alpha_threshold``."""
        return self._render(selected.float()[:, None], camera)[..., 0] > alpha_threshold

    @property
    def prompt_index(self) -> PromptIndex:
        """The features prepared for point prompts, built on first use (``PromptIndex``; the features stay fixed)."""
        if self._prompt_index is None:
            self._prompt_index = PromptIndex(self.features, self.gate.at)
        return self._prompt_index

    @torch.no_grad()
    def segment(self, prompt: PointPrompt, camera: Camera, threshold: float,
                feature_map: Tensor | None = None) -> Tensor:
        """Sec. 3.5: the Gaussians [N] bool that the point prompt on ``camera`` selects (checked first)."""
        prompt.check(camera.width, camera.height, num_views=prompt.view + 1)
        fmap = self.feature_map(camera) if feature_map is None else feature_map
        return self.prompt_index.select(fmap, prompt, threshold)
