"""The 3D Gaussian semantic field of CCL-LGS (Sec. 3.4, Eq. 9): d_f = 8 features per Gaussian and level, rendered
(Eq. 2), decoded by a lightweight MLP + softmax into a distribution over the level's N prototypes, trained with
cross-entropy against the index map.

Our reading: one field per mask level, held side by side in one ``feature_gaussians`` store (features
[N, L * d_f], level l in columns l*d_f .. (l+1)*d_f) that shares the Gaussians' geometry; with frozen geometry
this equals training the levels apart (independent parameters and losses). The decoder is Linear(d_f, 64) -
ReLU - Linear(64, N) (``hidden = 0``: the linear classifier of the supplement's 3D queries); pixels without a
mask (index -1) carry no loss; the level losses are summed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.functional import cross_entropy

from stages.lib.store import read_store
from stages.methods import register

FIELD_DIM = 8  # d_f of the paper (Sec. 4)
NO_PROTOTYPE = -1  # index-map value of pixels without a mask


class PrototypeDecoder(nn.Module):
    """The lightweight MLP of Eq. 9: d_f features -> logits over N prototypes (softmax applied by the loss)."""

    def __init__(self, field_dim: int, num_prototypes: int, hidden: int = 64) -> None:
        super().__init__()
        if hidden > 0:
            self.net = nn.Sequential(nn.Linear(field_dim, hidden), nn.ReLU(), nn.Linear(hidden, num_prototypes))
        else:
            self.net = nn.Sequential(nn.Linear(field_dim, num_prototypes))

    def forward(self, features: Tensor) -> Tensor:
        return self.net(features)


def level_decoders(num_levels: int, num_prototypes: int, field_dim: int = FIELD_DIM, hidden: int = 64,
                   seed: int = 0) -> nn.ModuleList:
    """One decoder per level, initialised from ``seed``."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.ModuleList(PrototypeDecoder(field_dim, num_prototypes, hidden) for _ in range(num_levels))


def level_slice(features: Tensor, level: int, field_dim: int = FIELD_DIM) -> Tensor:
    """The level's d_f columns of a multi-level feature tensor [..., L*d_f]."""
    return features[..., level * field_dim:(level + 1) * field_dim]


def semantic_ce(logits: Tensor, index: Tensor) -> Tensor:
    """Eq. 9: CE(softmax(logits), index map) averaged over the pixels with a prototype (index -1 ignored)."""
    valid = index != NO_PROTOTYPE
    if not valid.any():
        return logits.sum() * 0
    return cross_entropy(logits[valid].float(), index[valid].long())


class CCLSemanticObjective(nn.Module):
    """Feature-field objective (``stages.lib.feature_field.FeatureObjective``): sum over levels of Eq. 9.

    ``index_maps(view)`` returns the view's index maps [L,H,W]. The decoders are the objective's parameters, trained
    with the field and saved with it. Masks are not used.
    """

    def __init__(self, index_maps: Callable[[int], Tensor], decoders: nn.ModuleList,
                 field_dim: int = FIELD_DIM, level_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.index_maps, self.decoders, self.field_dim = index_maps, decoders, field_dim
        self.level_names = list(level_names) or [str(i) for i in range(len(decoders))]
        self.expected_views: int | None = None

    def prepare(self, view_mask_ids: Sequence[Tensor | None], feature_dim: int) -> None:
        """Checks before training (the shared trainer's hook): the field width and the index maps' view count."""
        expected = len(self.decoders) * self.field_dim
        if feature_dim != expected:
            raise ValueError(f"the CCL-LGS field needs feature_dim = {len(self.decoders)} levels x {self.field_dim}"
                             f" = {expected}, got {feature_dim}")
        if self.expected_views is not None and len(view_mask_ids) != self.expected_views:
            raise ValueError(f"the index maps cover {self.expected_views} views, the scene has {len(view_mask_ids)}")

    def forward(self, rendered: Tensor, masks: Tensor, step: int, view: int) -> tuple[Tensor, dict[str, Tensor]]:
        expected = len(self.decoders) * self.field_dim
        if rendered.shape[-1] != expected:
            raise ValueError(f"the CCL-LGS field needs feature_dim = {len(self.decoders)} levels x {self.field_dim}"
                             f" = {expected}, got {rendered.shape[-1]}")
        target = self.index_maps(view).to(rendered.device)
        losses = [semantic_ce(dec(level_slice(rendered, l, self.field_dim)), target[l])
                  for l, dec in enumerate(self.decoders)]
        return torch.stack(losses).sum(), {f"CE_{n}": v.detach() for n, v in zip(self.level_names, losses)}


class IndexMaps:
    """The index maps [V,L,H,W] of a ``prototypes`` store, held on the CPU as int16; a view's maps on request."""

    def __init__(self, path: str | Path) -> None:
        store = read_store("prototypes", path)
        self.path, self.levels = Path(path), list(store.attrs["levels"])
        self.num_prototypes = int(store.sizes["K"])
        self.maps = torch.from_numpy(store.load("index_maps"))

    def __call__(self, view: int) -> Tensor:
        return self.maps[view]


@register("objective", "ccl_semantic")
def ccl_semantic_objective(codebook: str | None = None, hidden: int = 64, lr: float = 1e-3,
                           seed: int = 0) -> CCLSemanticObjective:
    """Eq. 9 against the index maps of the ``prototypes`` store that ``codebook`` names (the variant's ``after:
    codebook``); decoders with ``hidden`` units trained at ``lr`` (Adam, the paper's 1e-3)."""
    if codebook is None:
        raise ValueError("the ccl_semantic objective needs the codebook stage's prototypes store: name a ccl "
                         "codebook variant in the train_features variant's after: block")
    maps = IndexMaps(codebook)
    objective = CCLSemanticObjective(maps, level_decoders(len(maps.levels), maps.num_prototypes, FIELD_DIM, hidden,
                                                          seed), FIELD_DIM, maps.levels)
    objective.lr = lr
    objective.expected_views = int(maps.maps.shape[0])
    return objective
