"""Oracle propagation: seed masks follow their ground-truth piece ids, with SAM2-like failure knobs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stages.lib.oracle.masks import stochastic_round
from stages.lib.tracking import Propagator


@dataclass
class TrackCorruption:
    """swap_rate: per frame after the seed, the fraction of visible objects whose ids are swapped in random
    pairs (a cross-view label swap); loss_rate: per frame, probability that an object is lost for the rest of
    the sequence (as a video tracker drifts off)."""

    swap_rate: float = 0.0
    loss_rate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("swap_rate", "loss_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"track corruption {name} must lie in [0, 1], got {getattr(self, name)}")


def oracle_propagator(clean: np.ndarray, corruption: TrackCorruption, rng: np.random.Generator) -> Propagator:
    """A propagator over clean, view-consistent piece-id maps [V,H,W]: a seed becomes the piece it mostly covers."""

    def propagate(seed_frame: int, seeds: dict[int, np.ndarray]) -> np.ndarray:
        out = np.full(clean.shape, -1, np.int32)
        piece_of = {}
        for obj, mask in seeds.items():
            ids, counts = np.unique(clean[seed_frame][mask], return_counts=True)
            keep = ids >= 0
            if keep.any() and counts[keep].max() * 2 > mask.sum():
                piece_of[obj] = int(ids[keep][counts[keep].argmax()])
        alive = set(piece_of)
        lookup = np.full(int(clean.max(initial=-1)) + 2, -1, np.int32)  # piece id + 1 -> object id (0: none)
        for t in range(seed_frame, clean.shape[0]):
            if t > seed_frame:
                alive = {o for o in alive if rng.random() >= corruption.loss_rate}
            present = np.zeros(lookup.size, bool)
            present[np.unique(clean[t]) + 1] = True
            visible = [o for o in sorted(alive) if present[piece_of[o] + 1]]
            target = {o: o for o in visible}
            if t > seed_frame and len(visible) > 1:
                pairs = min(stochastic_round(corruption.swap_rate * len(visible) / 2, rng), len(visible) // 2)
                order = rng.permutation(visible)
                for a, b in zip(order[:pairs], order[pairs:2 * pairs]):
                    target[int(a)], target[int(b)] = int(b), int(a)
            lookup[:] = -1
            for o in visible:  # objects sharing a piece: the last one paints it, as painting in turn would
                lookup[piece_of[o] + 1] = target[o]
            out[t] = lookup[clean[t] + 1]
        return out

    return propagate
