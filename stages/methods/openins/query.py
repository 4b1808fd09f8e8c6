"""OpenInsGaussian's open-vocabulary text queries of 3D instances: codebook search by cosine similarity, rendered
selections.

Every 3D instance k (codebook leaf) carries a fused language feature l_k (``association`` store). A text query t is
embedded (the stored vocabulary's text features, else an encoder callable such as open_clip's ``encode_text``)
and compared with every instance, r_k = cos(l_k, t). The selection is a handful of tensor ops on the query's
device: an instance mask over K followed by one gather over the N Gaussians' leaf ids.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stages.lib.annotations import QueryAnnotations
from stages.lib.cli import StageCall, config_from_params
from stages.lib.instance_gaussians import (
    Cameras,
    InstanceGaussians,
    load_instance_gaussians,
    render_channels,
    rendered_class_map,
)
from stages.lib.latency import latency_ms
from stages.lib.open_vocabulary import (  # noqa: F401  (QueryError: API)
    QueryError,
    TextEmbedder,
    TextEncoder,
    label_instances,
)
from stages.lib.selection import RenderHow, SelectionConfig, SelectMode
from stages.lib.store import StoreError, read_store
from stages.methods import register

log = logging.getLogger(__name__)


class Query:
    """Text queries over the instances of one scene.

    ``language`` [K,E] (zero rows: instances never associated), ``text_features`` [C,E] of ``vocabulary``,
    ``leaf_id`` [N] (-1: no instance); ``gaussians`` are needed only for rendering.
    """

    def __init__(self, language: Tensor, text_features: Tensor, vocabulary: list[str], leaf_id: Tensor,
                 gaussians: InstanceGaussians | None = None, encoder: TextEncoder | None = None) -> None:
        norm = torch.nn.functional.normalize
        self.language = norm(language.float(), dim=-1)
        self.text_features = norm(text_features.float(), dim=-1).to(self.language.device)
        self.vocabulary = list(vocabulary)
        self.leaf_id = leaf_id.long().to(self.language.device)
        self.gaussians = gaussians
        self.encoder = encoder
        self.seen = language.float().abs().sum(-1) > 0
        # Best vocabulary similarity per instance, for the "vocabulary" mode.
        sims = torch.cat([self.language @ self.text_features.T, self.language.new_full((len(language), 1), -1.0)], 1)
        self._vocab_best = sims.amax(-1)
        self._embed = TextEmbedder(self.text_features, self.vocabulary, encoder)

    @classmethod
    def load(cls, association: str | Path, codebook: str | Path, gaussians: str | Path | None = None,
             encoder: TextEncoder | None = None, device: str | torch.device = "cpu") -> "Query":
        """Build from an ``association`` and a ``codebook`` store (+ ``feature_gaussians`` for rendering); the
        association's refined ``leaf_id`` (its ``purify_k``), where it has one, replaces the codebook's."""
        assoc = read_store("association", association)
        cb = read_store("codebook", codebook)
        if assoc.sizes["K"] != cb.sizes["K"]:
            raise StoreError(f"{association}: {assoc.sizes['K']} instances but the codebook {codebook} has "
                             f"{cb.sizes['K']} leaves")
        g = load_instance_gaussians(gaussians, codebook, device)[0] if gaussians is not None else None
        leaf = torch.from_numpy((assoc if "leaf_id" in assoc else cb).load("leaf_id"))
        return cls(torch.from_numpy(assoc.load("instance_language")).to(device),
                   torch.from_numpy(assoc.load("text_features")), list(assoc.attrs["vocabulary"]), leaf, g, encoder)

    @property
    def device(self) -> torch.device:
        return self.language.device

    def text_embedding(self, text: str) -> Tensor:
        """Unit text embedding [E]: the stored vocabulary entry (case-insensitive), else the encoder's."""
        return self._embed(text)

    def relevance(self, text: str) -> Tensor:
        """r_k = cos(l_k, t) per instance [K]; -1 (the least possible) for unseen instances."""
        r = self.language @ self.text_embedding(text)
        return torch.where(self.seen, r, torch.full_like(r, -1.0))

    def select_instances(self, text: str, mode: SelectMode = "argmax", threshold: float = 0.25) -> Tensor:
        """Boolean [K] instance selection.

        argmax: the single most relevant instance (codebook search); threshold: every instance with r_k >= threshold;
        vocabulary: every instance for which the query matches at least as well as every vocabulary entry
        (for a vocabulary word: the instances whose argmax label it is).
        """
        r = self.relevance(text)
        if mode == "argmax":
            return torch.zeros_like(self.seen).scatter(0, r.argmax()[None], True) & self.seen
        if mode == "threshold":
            return self.seen & (r >= threshold)
        if mode == "vocabulary":
            return self.seen & (r >= self._vocab_best - 1e-6)
        raise ValueError(f"unknown selection mode {mode!r}")

    def gaussian_mask(self, instances: Tensor) -> Tensor:
        """Boolean [N]: the Gaussians of the selected instances (one gather; leaf -1 is never selected)."""
        lut = torch.cat([instances.new_zeros(1), instances])
        return lut[self.leaf_id + 1]

    def select(self, text: str, mode: SelectMode = "argmax", threshold: float = 0.25) -> tuple[Tensor, Tensor]:
        """(selected instance ids, boolean Gaussian mask [N])."""
        chosen = self.select_instances(text, mode, threshold)
        return chosen.nonzero()[:, 0], self.gaussian_mask(chosen)

    def _gaussians(self) -> InstanceGaussians:
        if self.gaussians is None:
            raise ValueError("rendering needs the Gaussians: build the Query with a feature_gaussians store")
        return self.gaussians

    def render_selection(self, text: str, cams: Cameras, mode: SelectMode = "argmax", threshold: float = 0.25,
                         how: RenderHow = "visible", alpha_threshold: float = 0.5) -> Tensor:
        """Boolean [C,H,W] selection masks, one per camera.

        visible (default): all Gaussians are rendered with a selection channel s_g in {0,1}; a pixel is selected if
        sum_g s_g a_g T_g >= alpha_threshold, i.e. the selected Gaussians are visible there (occlusion respected).
        alone: only the selected Gaussians are rendered and their alpha is binarised (the full footprint, seen
        through any occluder), as pi(M^i) in the association.
        """
        g = self._gaussians()
        _, mask = self.select(text, mode, threshold)
        if how == "alone":
            _, alpha = render_channels(g.take(mask), g.means.new_zeros(int(mask.sum()), 1), cams)
            return alpha >= alpha_threshold
        if how == "visible":
            out, _ = render_channels(g, mask[:, None].float(), cams)
            return out[..., 0] >= alpha_threshold
        raise ValueError(f"unknown rendering {how!r}")

    def relevance_map(self, text: str, cams: Cameras) -> Tensor:
        """Float [C,H,W]: the rendered per-Gaussian relevance r_{leaf(g)} (3DGS compositing; 0 on empty pixels,
        Gaussians without an instance count as -1)."""
        g = self._gaussians()
        r = self.relevance(text)
        per_gaussian = torch.where(self.leaf_id >= 0, r[self.leaf_id.clamp_min(0)], torch.full_like(r[:1], -1.0))
        return render_channels(g, per_gaussian[:, None], cams)[0][..., 0]

    def subset_labels(self, subset: list[str]) -> np.ndarray:
        """Per Gaussian: index into ``subset`` of its instance's argmax over the subset's text features; -1 none.

        Subset classes missing from the vocabulary cannot be predicted (their IoU is 0 if present).
        """
        known = [name for name in subset if name in self.vocabulary]
        if len(known) < len(subset):
            log.warning("classes %s are not in the vocabulary", sorted(set(subset) - set(known)))
        text = self.text_features[[self.vocabulary.index(n) for n in known]]
        best = label_instances(self.language, text).cpu().numpy()
        instance_label = np.array([subset.index(n) for n in known] + [-1])[best]  # best = -1 picks the trailing -1
        leaf = self.leaf_id.cpu().numpy()
        return np.where(leaf >= 0, instance_label[leaf.clip(0)], -1)

    def render_class_maps(self, classes: list[str], cams: Cameras) -> np.ndarray:
        """Class index into ``classes`` per pixel [C,H,W] (-1: a miss): every Gaussian takes its instance's argmax
        over the class list, the one-hot labels are rendered and each pixel takes the class of largest weight."""
        labels = torch.from_numpy(self.subset_labels(classes)).to(self.device)
        onehot = torch.nn.functional.one_hot(labels + 1, len(classes) + 1)[:, 1:].float()  # label -1: all zeros
        with torch.no_grad():
            weights, _ = render_channels(self._gaussians(), onehot, cams)
        return rendered_class_map(weights)


@dataclass
class CodebookSearchPredictions:
    """A codebook-search query as the text-query protocols read it (``stages.lib.annotations.AnnotationPredictor``):
    each annotated (view, query) pair's mask is the rendered selection of the query's instances on that view
    (``selection``), its relevance the rendered per-instance cosine r_k; 3D-OVS: every Gaussian takes its instance's
    argmax over the class list, the one-hot labels are rendered and each pixel takes the class of largest weight (-1,
    a miss, where no labelled Gaussian covers it)."""

    query: Query
    selection: SelectionConfig

    def predict(self, annotations: QueryAnnotations, cams: Cameras) -> dict[str, np.ndarray]:
        views = sorted(set(annotations.view.tolist()))
        if annotations.protocol == "3dovs":
            return {"class_maps": self.query.render_class_maps(annotations.queries, cams)}
        masks = np.zeros(annotations.masks.shape, bool)
        relevance = np.zeros(annotations.masks.shape, np.float32)
        for q in np.unique(annotations.query):
            rows = np.nonzero(annotations.query == q)[0]
            sub = cams[[views.index(int(v)) for v in annotations.view[rows]]]
            text = annotations.queries[int(q)]
            with torch.no_grad():
                masks[rows] = self.query.render_selection(text, sub, **vars(self.selection)).cpu().numpy()
                relevance[rows] = self.query.relevance_map(text, sub).cpu().numpy()
        return {"masks": masks, "relevance": relevance}


@register("text_query", "openins_codebook")
def text_query(call: StageCall) -> CodebookSearchPredictions:
    """evaluate_annotations on OpenInsGaussian (and SAGA's vote labels): inputs ``association`` (instance language),
    ``codebook`` and ``gaussians``; parameters: the selection knobs (``SelectionConfig``)."""
    selection = config_from_params(SelectionConfig, call.options, "openins_codebook text query")
    association, codebook, gaussians = call.require("association", "codebook", "gaussians")
    return CodebookSearchPredictions(Query.load(association, codebook, gaussians, device=call.device), selection)


def random_query(n_gaussians: int, n_instances: int, dim: int, device: str | torch.device,
                 vocabulary_size: int = 20, seed: int = 0) -> Query:
    """A query over random unit language features and random leaf ids (benchmarks)."""
    gen = torch.Generator().manual_seed(seed)
    language = torch.randn(n_instances, dim, generator=gen)
    text = torch.randn(vocabulary_size, dim, generator=gen)
    leaf = torch.randint(-1, n_instances, (n_gaussians,), generator=gen)
    return Query(language.to(device), text.to(device), [f"class{i}" for i in range(vocabulary_size)], leaf.to(device))


def bench_query_latency(n_gaussians: int = 1_000_000, n_instances: int = 640, dim: int = 512,
                        device: str | torch.device = "cuda", repeats: int = 200, warmup: int = 20) -> dict[str, float]:
    """Wall-clock latency of ``Query.select`` (argmax and threshold modes) in milliseconds, synchronised.

    Reports the median and 95th percentile per mode; the text is a vocabulary entry (as at evaluation time).
    """
    q = random_query(n_gaussians, n_instances, dim, device)
    result: dict[str, float] = {"n_gaussians": n_gaussians, "n_instances": n_instances, "dim": dim}
    for mode in ("argmax", "threshold"):
        median, p95 = latency_ms(lambda i: q.select(q.vocabulary[i % len(q.vocabulary)], mode, threshold=0.05),
                                 device, repeats, warmup)
        result[f"{mode}_median_ms"], result[f"{mode}_p95_ms"] = median, p95
    return result
