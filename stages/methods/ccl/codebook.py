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

from stages.lib.cli import StageCall, config_from_params
from stages.lib.kmeans import kmeans_pp_init
from stages.lib.oracle import embedding as oracle_embedding
from stages.lib.store import Store, StoreError, read_store, write_store
from stages.lib.weights import ModelChoice
from stages.methods import register
from stages.methods.ccl.field import NO_PROTOTYPE
from stages.methods.ccl.losses import CCLWeights, ccl_loss, nearest_prototype
from stages.methods.ccl.relevance import CANONICAL_NEGATIVES

log = logging.getLogger(__name__)


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

    def view_level(self, view: int, level: int) -> tuple[np.ndarray, Tensor]:
        """(mask ids [m], features [m,E]) of one view's masks at one level."""
        lo, hi = int(self.starts[view]), int(self.starts[view + 1])
        keep = self.level[lo:hi] == level
        if not keep.any():
            return np.zeros(0, np.int32), torch.zeros(0, self.features.sizes["E"])
        rows = np.asarray(self.features["mask_features"][lo:hi], dtype=np.float32)[keep]
        return self.mask_id[lo:hi][keep], torch.from_numpy(rows)


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


# ----------------------------------------------------------------------------------------------
# The codebook stage's CCL-LGS algorithm: learn per level, write prototypes and index maps
# ----------------------------------------------------------------------------------------------
def canonical_embeddings(features: Store, device: torch.device) -> Tensor:
    """Text embeddings [Q,E] of the canonical phrases (Eq. 10's negatives) in the features store's embedding space:
    the oracle's name vectors, or the CLIP text tower the features stage used (raw phrases, as LangSplat)."""
    phrases = list(CANONICAL_NEGATIVES)
    if features.attrs["source"] == "oracle":
        return oracle_embedding.encode_names(phrases, features.sizes["E"])
    from stages.lib.models.clip_features import build_clip

    block = features.attrs["provenance"]["params"].get("clip", {})
    choice = ModelChoice.from_params(block, str(features.attrs.get("model", "clip_convnext_base")))
    model = build_clip(choice.arch, choice.checkpoint(None), device, random_weights=choice.random_weights,
                       tiny=bool(block.get("tiny", False)))
    return model.encode_text(phrases).float().cpu()


def learn_level(stream: MaskFeatureStream, level: int, train: np.ndarray, cfg: CodebookLearnConfig,
                device: torch.device) -> Tensor:
    """The prototypes [N,E] of one level, learnt on the train views' masks."""
    def batches(epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        return (stream.batch(b, level) for b in view_batches(train, cfg.views_per_batch, cfg.seed + 1 + epoch))

    sample = reservoir_sample((f for f, _ in batches(-1)), cfg.init_sample, cfg.seed)
    init = initial_prototypes(sample, cfg.num_prototypes, cfg.seed)
    return torch.nn.functional.normalize(learn_prototypes(batches, init, cfg, device), dim=-1)


@register("codebook", "ccl_contrastive")
def run_codebook(call: StageCall) -> None:
    """Codebook stage, CCL-LGS: a ``prototypes`` store with one codebook per mask level and every view's index maps.

    Inputs: ``scene`` (train / test split), ``masks``, ``tracks``, ``features``; parameters: ``CodebookLearnConfig``.
    """
    scene_path, masks, tracks, features = call.require("scene", "masks", "tracks", "features")
    cfg = config_from_params(CodebookLearnConfig, call.options, "CCL-LGS codebook")
    stream = MaskFeatureStream(masks, tracks, features)
    is_test = read_store("scene", scene_path).load("is_test")
    if len(is_test) != stream.num_views:
        raise StoreError(f"{masks}: masks of {stream.num_views} views but the scene {scene_path} has {len(is_test)}")
    train = np.nonzero(~is_test)[0]
    levels = len(stream.levels)
    prototypes = torch.stack([learn_level(stream, l, train, cfg, call.device) for l in range(levels)])
    _, _, h, w = stream.masks["labels"].shape
    use = np.zeros((levels, cfg.num_prototypes), np.int32)
    inputs = {"scene": scene_path, "masks": masks, "tracks": tracks, "features": features}
    with write_store("prototypes", call.out, call.stage, call.params, inputs) as out:
        maps = out.create("index_maps", (stream.num_views, levels, h, w))
        for view in tqdm(range(stream.num_views), desc="index maps", unit="view", mininterval=5):
            view_maps = np.full((levels, h, w), NO_PROTOTYPE, np.int16)
            for l in range(levels):
                ids, feats = stream.view_level(view, l)
                chosen = mask_prototypes(feats, prototypes[l])
                view_maps[l] = index_map(stream.label_map(view, l), ids, chosen)
                if not is_test[view]:
                    np.add.at(use[l], chosen.astype(np.int64), 1)
            maps[view] = view_maps
        out.write("prototypes", prototypes.cpu().numpy().astype(np.float32))
        out.write("prototype_masks", use)
        out.write("text_features", np.asarray(stream.features.load("text_features"), np.float16))
        out.write("canonical_features", canonical_embeddings(stream.features, call.device).numpy().astype(np.float16))
        out.attrs.update(levels=stream.levels, num_prototypes=cfg.num_prototypes, margin=cfg.margin,
                         lambda_pull=cfg.lambda_pull, lambda_push=cfg.lambda_push,
                         vocabulary=list(stream.features.attrs["vocabulary"]),
                         canonical_phrases=list(CANONICAL_NEGATIVES), prototypes_used=(use > 0).sum(1).tolist())
    log.info("prototypes used per level (train masks): %s", (use > 0).sum(1).tolist())
