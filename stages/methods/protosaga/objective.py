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
    return view_classifiers(load_objective_state(store), views, str(store.path), device)


def view_classifiers(state: dict[str, Tensor], views: list[int], where: str, device: str | torch.device = "cpu"
                     ) -> list[tuple[Tensor, Tensor]]:
    """``stored_classifiers`` on a loaded objective state (``where`` names the store in errors). A train view whose
    masks were all empty (e.g. dropped) has no classifier: it gets one with no rows, so its pixels belong to no mask
    (Eq. 9) and it adds nothing to the memory bank."""
    if "mask_ids" not in state:
        raise StoreError(f"{where}: no per-view classifiers (train it with the objective protosaga_classifiers)")
    ids = state["mask_ids"].round().long()
    trained = [t for name, t in state.items() if name.startswith("classifiers.")]
    dim = trained[0].shape[1] if trained else 0
    out = []
    for v in views:
        key = f"classifiers.{v}"
        if key not in state:
            if v < len(ids) and bool((ids[v] < 0).all()):
                out.append((torch.zeros((0, dim), device=device), torch.zeros(0, dtype=torch.long, device=device)))
                continue
            raise StoreError(f"{where}: no classifier for train view {v}")
        rows = ids[v][ids[v] >= 0]
        out.append((state[key].float().to(device), rows.to(device)))
    return out
