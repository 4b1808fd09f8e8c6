"""Text queries of a trained CCL-LGS field (Sec. 3.4, Eq. 10; supplement D): 2D relevance maps from rendered
feature maps, per-Gaussian (3D) relevance by decoding each Gaussian's feature, class labels over a class list.

A ``CCLField`` holds the Gaussians (``feature_gaussians`` store with the decoders in ``objective_state``), and the
``prototypes`` store's per-level prototypes, vocabulary text embeddings and canonical phrase embeddings. The
per-Gaussian prototype index is decoded once at load, so a 3D query is Eq. 10 on the N prototypes plus one gather.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from stages.lib.cli import config_from_params
from stages.lib.gaussians import PARAM_KEYS, activated
from stages.lib.instance_gaussians import Cameras
from stages.lib.objective_state import load_objective_state
from stages.lib.open_vocabulary import QueryError, TextEmbedder, TextEncoder
from stages.lib.render import render
from stages.lib.store import StoreError, read_store
from stages.methods import register
from stages.methods.ccl.field import FIELD_DIM, level_decoders
from stages.methods.ccl.relevance import (
    choose_level,
    class_labels,
    decode_prototypes,
    gather_relevance,
    normalise_map,
    prototype_relevance,
)


class CCLField:
    """A CCL-LGS semantic field ready for text queries (see the module docstring).

    ``gaussians``: activated params (means, quats, scales, opacities) and ``features`` [N, L*d_f]; ``decoders``: one
    per level; ``prototypes`` [L,K,E]; ``text_features`` [C,E] of ``vocabulary``; ``canonical`` [Q,E].
    """

    def __init__(self, gaussians: dict[str, Tensor], decoders: torch.nn.ModuleList, prototypes: Tensor,
                 text_features: Tensor, vocabulary: list[str], canonical: Tensor, levels: list[str],
                 encoder: TextEncoder | None = None, temperature: float = 1.0) -> None:
        self.gaussians, self.decoders = gaussians, decoders.eval()
        self.device = prototypes.device
        norm = torch.nn.functional.normalize
        self.prototypes = norm(prototypes.float(), dim=-1)
        self.text_features = norm(text_features.float(), dim=-1).to(self.device)
        self.canonical = norm(canonical.float(), dim=-1).to(self.device)
        self.vocabulary, self.levels, self.temperature = list(vocabulary), list(levels), temperature
        self.text_embedding = TextEmbedder(self.text_features, self.vocabulary, encoder)
        with torch.no_grad():
            self.gaussian_index = decode_prototypes(gaussians["features"], decoders)  # [L,N]

    @classmethod
    def load(cls, gaussians: str | Path, prototypes: str | Path, device: str | torch.device = "cpu",
             encoder: TextEncoder | None = None, temperature: float = 1.0) -> "CCLField":
        """From a ``feature_gaussians`` store trained with the ``ccl_semantic`` objective and its ``prototypes``."""
        g_store = read_store("feature_gaussians", gaussians)
        p_store = read_store("prototypes", prototypes)
        levels, k = list(p_store.attrs["levels"]), int(p_store.sizes["K"])
        if g_store.sizes["D"] != len(levels) * FIELD_DIM:
            raise StoreError(f"{gaussians}: features have {g_store.sizes['D']} dims, the CCL-LGS field of "
                             f"{prototypes} needs {len(levels)} levels x {FIELD_DIM}")
        state = load_objective_state(g_store)
        if not state:
            raise StoreError(f"{gaussians}: no objective_state (decoders); was it trained with the ccl_semantic "
                             "objective?")
        hidden = int(g_store.attrs["provenance"]["params"].get("objective_params", {}).get("hidden", 64))
        decoders = level_decoders(len(levels), k, FIELD_DIM, hidden)
        try:
            decoders.load_state_dict({key.removeprefix("decoders."): v for key, v in state.items()})
        except RuntimeError as exc:
            raise StoreError(f"{gaussians}: its decoders do not fit {len(levels)} levels x {k} prototypes of "
                             f"{prototypes} ({exc})") from exc
        params = {key: torch.from_numpy(g_store.load(key)).to(device) for key in PARAM_KEYS}
        a = activated(params)
        g = {key: a[key] for key in ("means", "quats", "scales", "opacities")}
        g["features"] = torch.from_numpy(g_store.load("features")).to(device)
        return cls(g, decoders.to(device), torch.from_numpy(p_store.load("prototypes")).to(device),
                   torch.from_numpy(p_store.load("text_features")), list(p_store.attrs["vocabulary"]),
                   torch.from_numpy(p_store.load("canonical_features")), levels, encoder, temperature)

    # -- text ----------------------------------------------------------------------------------
    def prototype_relevance(self, text: str) -> Tensor:
        """Eq. 10 per level and prototype, [L,K]."""
        t = self.text_embedding(text)
        return torch.stack([prototype_relevance(p, t, self.canonical, self.temperature) for p in self.prototypes])

    # -- 2D ------------------------------------------------------------------------------------
    def render_features(self, cams: Cameras) -> Tensor:
        """The rendered multi-level feature maps [C,H,W,L*d_f] (Eq. 2)."""
        g = self.gaussians
        out, _, _ = render(g["means"], g["quats"], g["scales"], g["opacities"], g["features"], cams.viewmats,
                           cams.Ks, cams.width, cams.height, sh_degree=None)
        return out

    @torch.no_grad()
    def pixel_prototypes(self, feature_maps: Tensor) -> Tensor:
        """Decoded prototype per level and pixel, [L,C,H,W] (argmax of the softmax over prototypes)."""
        return decode_prototypes(feature_maps, self.decoders)

    def relevance_maps(self, text: str, pixel_index: Tensor) -> Tensor:
        """p(tau | v) per level and pixel [L, ...] from decoded prototype indices [L, ...]."""
        return gather_relevance(pixel_index, self.prototype_relevance(text))

    def query_2d(self, text: str, pixel_index: Tensor, threshold: float = 0.4) -> tuple[Tensor, Tensor]:
        """(mask [H,W], relevance [H,W]) of one view's decoded indices [L,H,W]: the level whose relevance peaks
        highest, thresholded after min-max normalisation."""
        maps = self.relevance_maps(text, pixel_index)
        relevance = maps[choose_level(maps)]
        return normalise_map(relevance) > threshold, relevance

    def class_map(self, pixel_index: Tensor, classes: list[str]) -> Tensor:
        """Per pixel of decoded indices [L, ...]: the index into ``classes`` of its best class (3D-OVS protocol)."""
        text = torch.stack([self.text_embedding(c) for c in classes])
        return class_labels(pixel_index, self.prototypes, text)

    # -- 3D ------------------------------------------------------------------------------------
    def gaussian_relevance(self, text: str) -> Tensor:
        """Per-Gaussian relevance [N] at the level whose relevance peaks highest (supplement D, no rasterisation)."""
        maps = self.relevance_maps(text, self.gaussian_index)
        return maps[choose_level(maps)]

    def select_gaussians(self, text: str, threshold: float = 0.4) -> Tensor:
        """Boolean [N]: Gaussians whose normalised relevance exceeds ``threshold``."""
        return normalise_map(self.gaussian_relevance(text)) > threshold

    def gaussian_classes(self, classes: list[str]) -> Tensor:
        """Per Gaussian: the index into ``classes`` of its best class over the levels, [N]."""
        return self.class_map(self.gaussian_index, classes)


def random_field(n_gaussians: int, levels: int = 2, num_prototypes: int = 128, dim: int = 512,
                 vocabulary_size: int = 20, device: str | torch.device = "cpu", seed: int = 0) -> CCLField:
    """A field over random features, decoders, prototypes and texts (benchmarks; no rendering)."""
    gen = torch.Generator().manual_seed(seed)
    g = {"features": torch.randn(n_gaussians, levels * FIELD_DIM, generator=gen).to(device)}
    decoders = level_decoders(levels, num_prototypes, FIELD_DIM, seed=seed).to(device)
    rand = lambda *shape: torch.randn(*shape, generator=gen).to(device)  # noqa: E731
    return CCLField(g, decoders, rand(levels, num_prototypes, dim), rand(vocabulary_size, dim),
                    [f"class{i}" for i in range(vocabulary_size)], rand(4, dim), [str(i) for i in range(levels)])


@dataclass
class CCLQueryConfig:
    """``stages.query --method ccl`` knobs: relevance threshold after min-max normalisation, Eq. 10 temperature."""

    threshold: float = 0.4
    temperature: float = 1.0


@register("query", "ccl")
def run_query(args: argparse.Namespace, device: torch.device, encoder: TextEncoder | None) -> None:
    """The query CLI for a CCL-LGS field: the 3D selection, and with ``--out`` the rendered 2D mask of ``--view``."""
    cfg = config_from_params(CCLQueryConfig, args.params, "CCL-LGS query")
    field = CCLField.load(args.gaussians, args.codebook, device, encoder, cfg.temperature)
    try:
        with torch.no_grad():
            relevance = field.gaussian_relevance(args.text)
            selected = normalise_map(relevance) > cfg.threshold
    except QueryError as exc:
        raise SystemExit(f"error: {exc.args[0]}") from exc
    print(f"query {args.text!r}: {int(selected.sum())} of {len(selected)} Gaussians (relevance max "
          f"{float(relevance.max()):.3f})")
    if args.out:
        if args.scene is None:
            raise SystemExit("error: --out needs --scene (and --view) to render the relevance map")
        cams = Cameras.from_scene(read_store("scene", args.scene), np.array([args.view]), device)
        with torch.no_grad():
            index = field.pixel_prototypes(field.render_features(cams))[:, 0]
            mask, _ = field.query_2d(args.text, index, cfg.threshold)
        from PIL import Image

        Image.fromarray(mask.cpu().numpy().astype(np.uint8) * 255).save(args.out)
        print(f"wrote {args.out}: {int(mask.sum())} selected pixels")
