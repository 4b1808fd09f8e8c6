"""Mask association of Proto-SaGa (Sec. 3.2, Eq. 9-16): Gaga's memory bank, made semantic-aware.

Every training view's masks are visited in view order. A mask's Gaussians are those whose projected centre falls in
it (Eq. 9); Gaga keeps the delta_d fraction nearest the camera (Eq. 10), Proto-SaGa adds the delta_s fraction that
the view's classifier finds most probable for the mask (Eq. 14-15) and takes the union (Eq. 16); the probability
set alone (``depth: false``) is the paper's Table 3 middle row. The first view's sets initialise the bank (Eq. 11); a
later set joins the entry it overlaps most when the overlap score exceeds delta (Eq. 12-13), else it starts a new
entry. The entry index is the mask's consistent instance id.

Our reading where the paper is silent, following Gaga's reference code: masks are visited one after the other and
each updates the bank at once; a mask joins the entry of highest score (argmax); a mask with no projected Gaussian
centre gets no id (-1). Two choices of Gaga's code that the equations do not state are options (``BankConfig``):
``membership`` says which of a joining set's Gaussians enter the entry: ``union`` all of them, as Eq. 13 reads
(default; a Gaussian may then sit in several entries); ``first`` only those in no entry yet, so a Gaussian stays in
the first entry it entered (Gaga's reference code, weijielyu/Gaga ``mask/projector.py``, which adds only
"non-assigned" Gaussians); ``latest`` all of them, leaving their other entries (a variant of ours, measured in
``bench/results/protosaga.csv`` as ``protosaga_excl``). ``patch_size`` ranks Eq. 10 and 15 within each
patch_size x patch_size image patch of the mask, so the kept fraction covers the whole mask (default: within the
whole mask). Two departures from the text are options for measurement: ``delta_s`` apart from ``delta_d`` (Sec. 4.1
sets them equal), and ``visible_margin``, which ranks Eq. 15 only among the Gaussians of G_k(t) at the front of the
view (centre depth within that relative margin of the rendered depth at its pixel; default: among all of G_k(t),
occluded ones included, as Eq. 15 reads).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from stages.lib.projection import mask_of_gaussians, project_centres, visible_gaussians


# ----------------------------------------------------------------------------------------------
# Eq. 10 and 15: rank filters within each mask; Eq. 16: their union
# ----------------------------------------------------------------------------------------------
def rank_within_mask(mask_of: Tensor, key: Tensor, descending: bool = False) -> tuple[Tensor, Tensor]:
    """Rank [N] of every Gaussian's ``key`` among the Gaussians of its mask (0 = smallest, or largest when
    ``descending``; ties by index) and E [N], the size of its mask's set; both -1 for Gaussians in no mask."""
    inside = mask_of >= 0
    idx = inside.nonzero()[:, 0]
    m, k = mask_of[idx], key[idx]
    order = torch.argsort(-k if descending else k, stable=True)
    order = order[torch.argsort(m[order], stable=True)]
    sorted_m = m[order]
    counts = torch.bincount(sorted_m)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.full_like(mask_of, -1)
    size = torch.full_like(mask_of, -1)
    rank[idx[order]] = torch.arange(len(order), device=mask_of.device) - starts[sorted_m]
    size[idx[order]] = counts[sorted_m]
    return rank, size


def depth_set(mask_of: Tensor, depth: Tensor, delta_d: float) -> Tensor:
    """G^d_k of Eq. 10 as a boolean [N]: Rank_d[z_i] < delta_d E within the Gaussian's mask (nearest first)."""
    rank, size = rank_within_mask(mask_of, depth)
    return (rank >= 0) & (rank < delta_d * size)


def semantic_set(mask_of: Tensor, own_probability: Tensor, delta_s: float) -> Tensor:
    """G^s_k of Eq. 15 as a boolean [N]: Rank_s[sigma_{i,k}(t)] < delta_s E, the most probable first, where
    ``own_probability`` [N] is sigma_{i,k}(t) of Eq. 14 for the Gaussian's own mask t."""
    rank, size = rank_within_mask(mask_of, own_probability, descending=True)
    return (rank >= 0) & (rank < delta_s * size)


# ----------------------------------------------------------------------------------------------
# Eq. 11-13: the memory bank
# ----------------------------------------------------------------------------------------------
MEMBERSHIPS = ("union", "first", "latest")


class MemoryBank:
    """M of Eq. 11-13: membership of N Gaussians in the bank's entries (a boolean matrix grown on demand)."""

    def __init__(self, num_gaussians: int, delta: float = 0.1, device: str | torch.device = "cpu",
                 capacity: int = 64) -> None:
        self.delta = delta
        self.members = torch.zeros((num_gaussians, capacity), dtype=torch.bool, device=device)
        self.assigned = torch.zeros(num_gaussians, dtype=torch.bool, device=device)  # in any entry
        self.size = 0

    def overlap(self, gaussians: Tensor) -> Tensor:
        """gamma(t, e) of Eq. 12 for every entry e: #[G(t) cap M(e)] / #[G(t)], ``gaussians`` an index tensor."""
        hits = self.members[gaussians, :self.size].sum(0, dtype=torch.float64)
        return hits / max(len(gaussians), 1)

    def add(self, gaussians: Tensor) -> int:
        """Append G(t) as a new entry (Eq. 11 on the first view; the 'otherwise' case of Eq. 13); returns its id."""
        if self.size == self.members.shape[1]:
            grown = torch.zeros((self.members.shape[0], 2 * self.size), dtype=torch.bool, device=self.members.device)
            grown[:, :self.size] = self.members
            self.members = grown
        self.members[gaussians, self.size] = True
        self.assigned[gaussians] = True
        self.size += 1
        return self.size - 1

    def join(self, gaussians: Tensor, entry: int, membership: str = "union") -> None:
        """Eq. 13's update of an existing entry under a ``membership`` rule (module docstring): ``union``
        M(e) <- G cup M(e); ``first`` adds only the Gaussians of G in no entry yet; ``latest`` adds G and removes it
        from every other entry."""
        if membership == "first":
            gaussians = gaussians[~self.assigned[gaussians]]
        elif membership == "latest":
            self.members[gaussians, :self.size] = False
        elif membership != "union":
            raise ValueError(f"membership must be one of {MEMBERSHIPS}, got {membership!r}")
        self.members[gaussians, entry] = True
        self.assigned[gaussians] = True

    def assign(self, gaussians: Tensor, membership: str = "union") -> int:
        """Eq. 12-13: join the entry of highest overlap if it exceeds delta (``join``), else start a new entry
        (``add``); returns the entry id, -1 for an empty set (no Gaussian to decide by)."""
        if len(gaussians) == 0:
            return -1
        if self.size:
            gamma = self.overlap(gaussians)
            best = int(gamma.argmax())
            if float(gamma[best]) > self.delta:
                self.join(gaussians, best, membership)
                return best
        if membership == "latest":  # a new entry takes its Gaussians from the others too
            self.members[gaussians, :self.size] = False
        return self.add(gaussians)

    def gaussian_sets(self) -> Tensor:
        """Membership [N, entries] of the filled entries."""
        return self.members[:, :self.size]


# ----------------------------------------------------------------------------------------------
# One view, and the whole sequence
# ----------------------------------------------------------------------------------------------
@dataclass
class BankConfig:
    """delta_d (Eq. 10), delta_s (Eq. 15; None = delta_d, as Sec. 4.1 sets them equal), delta (Eq. 13), tau
    (Eq. 14); ``semantic=False`` is Gaga (depth set only), True Proto-SaGa's union (Eq. 16); ``depth=False`` with
    ``semantic=True`` keeps the probability set alone (Eq. 15; the second row of the paper's Table 3). ``membership``
    (default ``union``, Eq. 13), ``patch_size`` and ``visible_margin`` (Eq. 15 among the visible Gaussians only) are
    described in the module docstring; the last two off by default."""

    delta_d: float = 0.2
    delta_s: float | None = None
    delta: float = 0.1
    tau: float = 10.0
    semantic: bool = True
    depth: bool = True
    membership: str = "union"
    patch_size: int | None = None
    visible_margin: float | None = None

    def __post_init__(self) -> None:
        if not (self.depth or self.semantic):
            raise ValueError("the association needs at least one criterion: depth (Eq. 10) or semantic (Eq. 15)")
        for name in ("delta_d", "delta"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if self.delta_s is not None and not 0.0 <= self.delta_s <= 1.0:
            raise ValueError(f"delta_s must lie in [0, 1], got {self.delta_s}")
        if self.membership not in MEMBERSHIPS:
            raise ValueError(f"membership must be one of {MEMBERSHIPS}, got {self.membership!r}")
        if self.patch_size is not None and self.patch_size < 1:
            raise ValueError(f"patch_size must be a positive pixel count, got {self.patch_size}")
        if self.visible_margin is not None and self.visible_margin < 0:
            raise ValueError(f"visible_margin must be >= 0 (a fraction of the rendered depth), got {self.visible_margin}")

    @property
    def semantic_delta(self) -> float:
        return self.delta_d if self.delta_s is None else self.delta_s


def patch_groups(mask_of: Tensor, pixel: Tensor, width: int, height: int, patch_size: int) -> Tensor:
    """Group id [N] of every Gaussian's (mask, image patch) cell for patch-wise ranking (-1 in no mask)."""
    cols, rows = -(-width // patch_size), -(-height // patch_size)
    patch = (pixel // width // patch_size) * cols + (pixel % width) // patch_size
    return torch.where(mask_of >= 0, mask_of * (cols * rows) + patch, torch.full_like(mask_of, -1))


def view_sets(mask_of: Tensor, depth: Tensor, own_probability: Tensor | None, cfg: BankConfig,
              groups: Tensor | None = None, visible: Tensor | None = None) -> Tensor:
    """G^d (Gaga), G^saga = G^d cup G^s (Eq. 16) or G^s alone of every mask of a view, as a boolean [N] (each
    Gaussian lies in at most one mask's set, its own mask's). ``groups`` [N] (``patch_groups``) ranks within
    (mask, patch) cells instead of whole masks; ``visible`` [N] (``visible_gaussians``) restricts Eq. 15's ranking,
    and its E, to the visible Gaussians of each mask."""
    ranked_in = mask_of if groups is None else groups
    chosen = depth_set(ranked_in, depth, cfg.delta_d) if cfg.depth else torch.zeros_like(mask_of, dtype=torch.bool)
    if cfg.semantic:
        if own_probability is None:
            raise ValueError("the semantic-aware set (Eq. 15) needs the classifier probabilities of Eq. 14")
        candidates = ranked_in if visible is None else torch.where(visible, ranked_in, torch.full_like(ranked_in, -1))
        chosen = chosen | semantic_set(candidates, own_probability, cfg.semantic_delta)
    return chosen


def associate_view(bank: MemoryBank, mask_of: Tensor, chosen: Tensor, num_masks: int,
                   membership: str = "union") -> Tensor:
    """Consistent id [num_masks] of every mask id of a view (-1: no Gaussian), masks visited in id order."""
    ids = torch.full((num_masks,), -1, dtype=torch.long)
    keep = chosen & (mask_of >= 0)
    gaussians = keep.nonzero()[:, 0]
    owner = mask_of[gaussians]
    order = torch.argsort(owner, stable=True)
    gaussians, owner = gaussians[order], owner[order]
    counts = torch.bincount(owner, minlength=num_masks).tolist()
    for t, members in enumerate(torch.split(gaussians, counts)):
        ids[t] = bank.assign(members, membership)
    return ids


def own_probabilities(features: Tensor, mask_of: Tensor, weights: Tensor, row_ids: Tensor, tau: float) -> Tensor:
    """sigma_{i,k}(t) of Eq. 14 for every Gaussian's own mask t ([N]; 0 outside masks or for a mask without a
    classifier row). ``weights`` [L,D] is w_k, ``row_ids`` [L] the label id each row classifies."""
    from stages.methods.protosaga.classifiers import gaussian_probabilities

    out = torch.zeros(len(mask_of), dtype=features.dtype, device=features.device)
    idx = (mask_of >= 0).nonzero()[:, 0]
    if len(idx) == 0 or len(row_ids) == 0:
        return out
    lut = torch.full((int(max(mask_of.max(), row_ids.max())) + 1,), -1, dtype=torch.long, device=mask_of.device)
    lut[row_ids.long()] = torch.arange(len(row_ids), device=mask_of.device)
    row = lut[mask_of[idx]]
    has_row = row >= 0
    probs = gaussian_probabilities(features[idx[has_row]], weights, tau)
    out[idx[has_row]] = probs.gather(1, row[has_row][:, None])[:, 0]
    return out


def associate_views(means: Tensor, viewmats: Tensor, Ks: Tensor, width: int, height: int, label_maps: Tensor,
                    cfg: BankConfig, features: Tensor | None = None,
                    classifiers: list[tuple[Tensor, Tensor]] | None = None,
                    progress: bool = True, depth_maps: Tensor | None = None) -> tuple[list[Tensor], MemoryBank]:
    """The memory bank over a sequence of views (Eq. 9-16): per view, the consistent id of every mask id.

    ``label_maps`` [V,H,W] (-1 none) are the views' inconsistent masks in visiting order, ``viewmats`` / ``Ks`` their
    cameras; with ``cfg.semantic``, ``features`` [N,D] and per view the classifier (w_k [L,D], label id of each row)
    give Eq. 14; with ``cfg.visible_margin``, ``depth_maps`` [V,H,W] are the views' rendered depths.
    """
    from tqdm import tqdm

    if cfg.semantic and (features is None or classifiers is None or len(classifiers) != len(label_maps)):
        raise ValueError("the semantic-aware association needs the Gaussian features and one classifier per view")
    if cfg.visible_margin is not None and (depth_maps is None or len(depth_maps) != len(label_maps)):
        raise ValueError("visible_margin needs one rendered depth map per view")
    bank = MemoryBank(len(means), cfg.delta, means.device)
    out = []
    for k in tqdm(range(len(label_maps)), desc="memory bank", unit="view", disable=not progress, mininterval=5):
        pixel, depth = project_centres(means, viewmats[k], Ks[k], width, height)
        mask_of = mask_of_gaussians(pixel, label_maps[k])
        own = None
        if cfg.semantic:
            weights, row_ids = classifiers[k]
            own = own_probabilities(features, mask_of, weights, row_ids, cfg.tau)
        num_masks = int(label_maps[k].max()) + 1
        groups = None if cfg.patch_size is None else patch_groups(mask_of, pixel, width, height, cfg.patch_size)
        visible = None if cfg.visible_margin is None else visible_gaussians(pixel, depth, depth_maps[k],
                                                                              cfg.visible_margin)
        chosen = view_sets(mask_of, depth, own, cfg, groups, visible)
        out.append(associate_view(bank, mask_of, chosen, max(num_masks, 0), cfg.membership))
    return out, bank
