"""gsplat's 3DGS densification strategy with its per-step statistics gathered without a host sync.

3DGS (Kerbl et al. 2023, Sec. 5.2) densifies by the view-space positional gradient averaged over the steps in which
a Gaussian was visible. gsplat 1.5.3's ``DefaultStrategy._update_state`` gathers it every step through boolean
indexing (``torch.where(sel)``, ``grads[sel]``), which makes the host wait for the GPU twice per step, so the next
step's kernels cannot be queued while the current one runs. ``SyncFreeDefaultStrategy`` computes the same sums over
every Gaussian with the invisible ones masked to zero (dense tensors, no data-dependent shapes). With one camera per
step, as ``train_gs`` renders, the statistics are bit-identical to gsplat's (tested); with several cameras the
screen-radius statistic is the maximum over them (gsplat's scatter keeps one camera's value, its comment says a
scatter-max was meant). Everything else (growing, pruning, opacity resets) is gsplat's.
"""

from __future__ import annotations

from typing import Any

import torch
from gsplat.strategy import DefaultStrategy


class SyncFreeDefaultStrategy(DefaultStrategy):
    """``DefaultStrategy`` whose running gradient / count / radius statistics need no host sync (module docstring)."""

    @torch.no_grad()
    def _update_state(self, params: Any, state: dict[str, Any], info: dict[str, Any], packed: bool = False) -> None:
        if packed:  # the packed layout already lists the visible Gaussians: no boolean indexing to avoid
            super()._update_state(params, state, info, packed=True)
            return
        means2d = info[self.key_for_gradient]
        grads = (means2d.absgrad if self.absgrad else means2d.grad).clone()  # [C, N, 2]
        grads[..., 0] *= info["width"] / 2.0 * info["n_cameras"]  # to [-1, 1] screen space, as gsplat
        grads[..., 1] *= info["height"] / 2.0 * info["n_cameras"]
        visible = (info["radii"] > 0.0).all(dim=-1)  # [C, N]
        n = len(next(iter(params.values())))
        for key in ("grad2d", "count"):
            if state[key] is None:
                state[key] = torch.zeros(n, device=grads.device)
        state["grad2d"] += torch.where(visible, grads.norm(dim=-1), 0.0).sum(0)
        state["count"] += visible.sum(0, dtype=torch.float32)
        if self.refine_scale2d_stop_iter > 0:
            if state["radii"] is None:
                state["radii"] = torch.zeros(n, device=grads.device)
            radii = torch.where(visible, info["radii"].max(dim=-1).values.float(), 0.0).amax(0)
            state["radii"] = torch.maximum(state["radii"], radii / float(max(info["width"], info["height"])))
