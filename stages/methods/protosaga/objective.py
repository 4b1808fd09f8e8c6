"""Proto-SaGa's training objective, registered as the ``objective`` ``protosaga_classifiers`` (Sec. 3.1, Eq. 6-8)."""

from __future__ import annotations

import torch
from torch import Tensor

from stages.lib.objective_state import load_objective_state
from stages.lib.store import Store, StoreError
from stages.methods import register
from stages.methods.protosaga.classifiers import ViewClassifierObjective


@register("objective", "protosaga_classifiers")
def protosaga_classifiers(tau: float = 10.0, weight: float = 0.05, lr: float = 5e-4,
                          seed: int = 0) -> ViewClassifierObjective:
    """lambda_CE L_CE with per-view classifiers (tau = 10, lambda_CE = 0.05, classifier lr 5e-4: Sec. 4.1); the
    variant's ``photometric_weight: 1`` and ``geometry: optimise`` give the joint training of Eq. 8."""
    return ViewClassifierObjective(tau=tau, weight=weight, lr=lr, seed=seed)


def stored_classifiers(store: Store, views: list[int], device: str | torch.device = "cpu"
                       ) -> list[tuple[Tensor, Tensor]]:
    """(w_k [L_k,D], the label id of each row [L_k]) of the given views from a ``feature_gaussians`` store trained
    with ``protosaga_classifiers`` (its ``objective_state``); a clear error if the store has none."""
    state = load_objective_state(store)
    if "mask_ids" not in state:
        raise StoreError(f"{store.path}: no per-view classifiers (train it with the objective protosaga_classifiers)")
    ids = state["mask_ids"].round().long()
    out = []
    for v in views:
        key = f"classifiers.{v}"
        if key not in state:
            raise StoreError(f"{store.path}: no classifier for train view {v}")
        rows = ids[v][ids[v] >= 0]
        out.append((state[key].float().to(device), rows.to(device)))
    return out
