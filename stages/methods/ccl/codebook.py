"""Contrastive codebook learning (CCL-LGS Sec. 3.3) streamed from Zarr, and the per-pixel index maps (Sec. 3.4).

One codebook of N prototypes is learnt per mask level, from the train views' mask features and track ids, with
Eq. 8 (``losses.ccl_loss``). Views are read a batch at a time (``MaskFeatureStream``), so the feature rows in
memory are bounded by ``views_per_batch`` whatever the number of views; only the mask table's integer columns
(a few bytes per mask) are held whole. Pull / push pairs are formed inside a batch, across its views.

Our reading where the paper is silent: N = 128 prototypes (the paper fixes N independently of the scene's track
count but gives no value); prototypes start at a k-means++ seeding of a uniform reservoir sample of the
features; Adam (lr 1e-2) over ``epochs`` passes of shuffled view batches.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.kmeans import kmeans_pp_init
from stages.lib.store import StoreError, read_store
from stages.methods.ccl.losses import CCLWeights, ccl_loss, nearest_prototype

log = logging.getLogger(__name__)
NO_PROTOTYPE = -1


@dataclass
class CodebookLearnConfig:
    """Knobs of the codebook learner (module docstring); ``margin``, ``lambda_*`` are Eq. 7-8's."""

    num_prototypes: int = 128
    margin: float = 0.7
    lambda_pull: float = 0.25
    lambda_push: float = 0.25
    epochs: int = 20
    lr: float = 1e-2
    views_per_batch: int = 8
    init_sample: int = 4096
    seed: int = 0

    def __post_init__(self) -> None:
        if self.num_prototypes < 2 or self.num_prototypes > np.iinfo(np.int16).max:
            raise ValueError(f"num_prototypes must lie in [2, 32767], got {self.num_prototypes}")
        if self.epochs < 0 or self.views_per_batch < 1 or self.init_sample < 1:
            raise ValueError(f"epochs must be >= 0, views_per_batch and init_sample >= 1: {self}")

    @property
    def weights(self) -> CCLWeights:
        return CCLWeights(self.lambda_pull, self.lambda_push, self.margin)


class MaskFeatureStream:
    """Mask features (``features`` store) with their track ids (``tracks``) and label maps (``masks``), view by view.

    The three stores share the mask table's rows; rows of one view are contiguous (the masks stage writes view by
    view), which is checked.
    """

    def __init__(self, masks: str | Path, tracks: str | Path, features: str | Path) -> None:
        self.masks = read_store("masks", masks)
        self.tracks = read_store("tracks", tracks)
        self.features = read_store("features", features)
        self.view = self.masks.load("mask_view")
        self.level = self.masks.load("mask_level")
        self.mask_id = self.masks.load("mask_id")
        self.track = self.tracks.load("track_id")
        m = len(self.view)
        for store, size in ((self.tracks, len(self.track)), (self.features, self.features.sizes["M"])):
            if size != m:
                raise StoreError(f"{store.path}: {size} mask rows but the masks store {masks} has {m}")
        if np.any(np.diff(self.view) < 0):
            raise StoreError(f"{masks}: mask table rows are not grouped by view")
        self.levels = list(self.masks.attrs["levels"])
        self.num_views = self.masks.sizes["V"]
        self.starts = np.searchsorted(self.view, np.arange(self.num_views + 1))

    def level_index(self, level: str) -> int:
        if level not in self.levels:
            raise StoreError(f"{self.masks.path}: no mask level {level!r}; it has {self.levels}")
        return self.levels.index(level)

    def rows(self, views: Iterable[int], level: int) -> np.ndarray:
        """Table rows of the given views' masks at one level."""
        spans = [np.arange(self.starts[v], self.starts[v + 1]) for v in views]
        rows = np.concatenate(spans) if spans else np.zeros(0, np.int64)
        return rows[self.level[rows] == level]

    def batch(self, views: Iterable[int], level: int) -> tuple[Tensor, Tensor]:
        """(features [m,E] float32, track ids [m] long) of the views' masks at one level."""
        views = list(views)
        parts, tracks = [], []
        for v in views:
            lo, hi = int(self.starts[v]), int(self.starts[v + 1])
            keep = self.level[lo:hi] == level
            if keep.any():
                parts.append(np.asarray(self.features["mask_features"][lo:hi], dtype=np.float32)[keep])
                tracks.append(self.track[lo:hi][keep])
        if not parts:
            return torch.zeros(0, self.features.sizes["E"]), torch.zeros(0, dtype=torch.long)
        return torch.from_numpy(np.concatenate(parts)), torch.from_numpy(np.concatenate(tracks)).long()

    def label_map(self, view: int, level: int) -> np.ndarray:
        """Mask ids [H,W] of one view and level (-1 none)."""
        return np.asarray(self.masks["labels"][view, level])


def view_batches(views: np.ndarray, views_per_batch: int, seed: int) -> list[np.ndarray]:
    """The views shuffled by ``seed`` and cut into batches of ``views_per_batch``."""
    order = np.random.default_rng(seed).permutation(views)
    return [order[i:i + views_per_batch] for i in range(0, len(order), views_per_batch)]


def reservoir_sample(batches: Iterable[Tensor], size: int, seed: int) -> Tensor:
    """A uniform sample of at most ``size`` rows from a stream of row batches (keeps the ``size`` smallest random
    keys), in memory O(size)."""
    gen = torch.Generator().manual_seed(seed)
    kept, keys = None, None
    for rows in batches:
        if len(rows) == 0:
            continue
        k = torch.rand(len(rows), generator=gen)
        kept = rows if kept is None else torch.cat([kept, rows])
        keys = k if keys is None else torch.cat([keys, k])
        if len(keys) > size:
            keys, order = torch.topk(keys, size, largest=False)
            kept = kept[order]
    if kept is None:
        raise ValueError("no mask features to sample the initial prototypes from")
    return kept


def initial_prototypes(sample: Tensor, n: int, seed: int) -> Tensor:
    """N prototypes by k-means++ seeding on the unit-normalised sample (distinct features first)."""
    unit = torch.nn.functional.normalize(sample.float(), dim=-1)
    return kmeans_pp_init(unit, n, torch.Generator().manual_seed(seed)).clone()


def learn_prototypes(batches: Callable[[int], Iterator[tuple[Tensor, Tensor]]], init: Tensor,
                     cfg: CodebookLearnConfig, device: torch.device, progress: bool = True) -> Tensor:
    """Minimise Eq. 8 over ``cfg.epochs`` passes; ``batches(epoch)`` yields (features, track ids). Returns T [N,E]."""
    prototypes = torch.nn.Parameter(init.float().to(device).clone())
    opt = torch.optim.Adam([prototypes], lr=cfg.lr)
    for epoch in tqdm(range(cfg.epochs), desc="codebook epochs", disable=not progress, mininterval=5):
        sums: dict[str, float] = {}
        for features, tracks in batches(epoch):
            if len(features) == 0:
                continue
            loss, terms = ccl_loss(features.to(device), tracks.to(device), prototypes, cfg.weights)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        log.info("epoch %d: %s", epoch + 1, " ".join(f"{k}={v:.4g}" for k, v in sums.items()))
    return prototypes.detach()


def index_map(labels: np.ndarray, mask_ids: np.ndarray, mask_prototype: np.ndarray) -> np.ndarray:
    """Sec. 3.4's index map: each pixel takes the prototype index (Eq. 4) of its mask; -1 where no mask. [H,W] int16."""
    lut = np.full(int(max(labels.max(initial=-1), mask_ids.max(initial=-1))) + 2, NO_PROTOTYPE, np.int16)
    lut[mask_ids.astype(np.int64) + 1] = mask_prototype
    return lut[labels.astype(np.int64) + 1]


def mask_prototypes(features: Tensor, prototypes: Tensor) -> np.ndarray:
    """Eq. 4 for a batch of mask features: prototype index per mask, int16."""
    if len(features) == 0:
        return np.zeros(0, np.int16)
    return nearest_prototype(features.to(prototypes.device), prototypes).cpu().numpy().astype(np.int16)
