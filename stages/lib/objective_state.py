"""Learnt parameters of a feature-field objective (e.g. CCL-LGS's decoders) kept with the field it trained.

They are written into the ``feature_gaussians`` store as one flat float32 array ``objective_state`` with the layout
(parameter names and shapes, in order) in the attribute of the same name, so queries can rebuild the objective's
modules without pickles.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from stages.lib.store import Store, StoreError

KEY = "objective_state"


def module_state(objective: object) -> dict[str, Tensor]:
    """The state of an objective that is a ``torch.nn.Module`` (empty otherwise)."""
    return dict(objective.state_dict()) if isinstance(objective, torch.nn.Module) else {}


def flatten_state(state: Mapping[str, Tensor]) -> tuple[Tensor, list[list]]:
    """(float32 vector [S], layout [[name, shape], ...]) of a state dict."""
    layout = [[name, list(t.shape)] for name, t in state.items()]
    parts = [t.detach().float().reshape(-1).cpu() for t in state.values()]
    return (torch.cat(parts) if parts else torch.zeros(0)), layout


def unflatten_state(vector: Tensor, layout: list[list]) -> dict[str, Tensor]:
    """The state dict back from ``flatten_state``'s vector and layout; ValueError if their sizes disagree."""
    sizes = [int(np.prod(shape)) for _, shape in layout]
    if sum(sizes) != vector.numel():
        raise ValueError(f"objective state has {vector.numel()} values, its layout needs {sum(sizes)}")
    return {name: chunk.reshape(shape) for (name, shape), chunk in zip(layout, torch.split(vector, sizes))}


def load_objective_state(store: Store) -> dict[str, Tensor]:
    """The objective state of a ``feature_gaussians`` store (empty if it has none)."""
    if KEY not in store:
        return {}
    try:
        return unflatten_state(torch.from_numpy(store.load(KEY)), store.attrs[KEY])
    except (KeyError, ValueError) as exc:
        raise StoreError(f"{store.path}: unreadable objective_state ({exc})") from exc
