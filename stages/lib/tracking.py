"""Cross-view track ids for masks by propagating seed masks through the view sequence (CCL-LGS Sec. 3.3).

A propagator (SAM2's video predictor, or the oracle) maps seed masks on one frame to per-frame object label
maps for that frame and every later one. Each mask then takes the id of the propagated object it overlaps with
IoU > 0.5 (``assign_tracks``). CCL-LGS seeds only the first frame. As an extension (off by default), objects
can be re-seeded: when masks have stayed unmatched for ``reseed_after`` consecutive frames, the current
frame's unmatched masks become new objects, propagated from there on; existing tracks keep their pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from tqdm import tqdm

from stages.lib.track_assign import MATCH_IOU, assign_tracks

# (seed_frame, {object id: bool mask [H,W]}) -> int32 [V,H,W] object ids, -1 before seed_frame and where none.
Propagator = Callable[[int, dict[int, np.ndarray]], np.ndarray]


@dataclass
class TrackConfig:
    """``reseed_after``: frames with unmatched masks before re-seeding (0 = never, the CCL-LGS setting)."""

    min_iou: float = MATCH_IOU
    reseed_after: int = 0
    reseed_min_area: int = 16


def track_label_maps(labels: np.ndarray, propagate: Propagator, cfg: TrackConfig,
                     desc: str = "track") -> tuple[list[dict[int, int]], np.ndarray]:
    """Track ids for one level's label maps [V,H,W]: per view {mask id: track id or -1}, and the propagated maps."""
    first = {int(m): labels[0] == m for m in np.unique(labels[0][labels[0] >= 0])}
    propagated = propagate(0, first) if first else np.full(labels.shape, -1, np.int32)
    next_id = max(first, default=-1) + 1
    assignments: list[dict[int, int]] = []
    unmatched_run = 0
    for t in tqdm(range(labels.shape[0]), desc=desc, unit="view", mininterval=5):
        assign = assign_tracks(labels[t], propagated[t], cfg.min_iou)
        unmatched = [m for m, tr in assign.items() if tr < 0 and (labels[t] == m).sum() >= cfg.reseed_min_area]
        unmatched_run = unmatched_run + 1 if unmatched else 0
        if cfg.reseed_after and unmatched_run >= cfg.reseed_after:
            seeds = {next_id + k: labels[t] == m for k, m in enumerate(unmatched)}
            next_id += len(seeds)
            fresh = propagate(t, seeds)
            propagated = np.where(propagated >= 0, propagated, fresh)
            assign = assign_tracks(labels[t], propagated[t], cfg.min_iou)
            unmatched_run = 0
        assignments.append(assign)
    return assignments, propagated
