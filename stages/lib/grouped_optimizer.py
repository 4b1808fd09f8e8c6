"""One optimiser over all Gaussian parameter tensors, seen per parameter as gsplat's strategies expect.

gsplat's densification strategies (``DefaultStrategy``, ``MCMCStrategy``) take a dict ``name -> optimizer`` with
one parameter group each, and replace a group's tensor (and move its Adam state) when they clone, split, prune or
relocate Gaussians. One torch optimiser per tensor costs one ``step()`` / ``zero_grad()`` call each, i.e. Python
and launch overhead six times per training step. Here one ``torch.optim.Adam`` holds every tensor as its own group
(own learning rate, same update) and each name gets a :class:`GroupView`: a window on that one group and the shared
state, which is all the strategies read or write. Speed only: the update is Adam's, group by group.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor


class GroupView:
    """Parameter group ``index`` of ``optimizer`` as an optimiser of its own (``param_groups``, ``state``)."""

    def __init__(self, optimizer: torch.optim.Optimizer, index: int) -> None:
        self.optimizer = optimizer
        self.index = index

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return [self.optimizer.param_groups[self.index]]

    @property
    def state(self) -> dict[Tensor, Any]:
        return self.optimizer.state


def shared_adam(params: Mapping[str, Tensor], lrs: Mapping[str, float], fused: bool | None = None,
                eps: float = 1e-15) -> tuple[torch.optim.Adam, dict[str, GroupView]]:
    """One Adam with a group per named tensor (``name`` kept in the group, as gsplat's trainer does) and the views
    by name, for the tensors with a positive learning rate."""
    names = [k for k in params if lrs.get(k, 0.0) > 0]
    adam = torch.optim.Adam([{"params": [params[k]], "lr": lrs[k], "name": k} for k in names], eps=eps, fused=fused)
    return adam, {k: GroupView(adam, i) for i, k in enumerate(names)}
