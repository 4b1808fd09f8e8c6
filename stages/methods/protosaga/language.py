"""Open vocabulary for Proto-SaGa's instances, registered as the ``evaluation`` ``protosaga_language`` of
``evaluate_semantic`` and as the ``text_query`` ``protosaga_language`` of ``evaluate_annotations`` (the text-query
datasets: LERF-OVS, 3D-OVS, LERF-Mask).

Every consistent instance's language feature fuses the CLIP features of the masks the memory bank gave its id
(OpenInsGaussian's cross-view fusion, ``stages.methods.openins.association.fuse_language``; the paper has no language
part); the instances are the prototype labels of the Gaussians (the ``codebook`` written by
``protosaga_prototypes``). Queries and both protocols are then those of OpenInsGaussian's codebook search.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from stages.evaluate_semantic import SemanticEvalConfig, scannet_3d, text_protocols
from stages.lib.cli import StageCall, config_from_params
from stages.lib.instance_gaussians import Cameras, load_instance_gaussians
from stages.lib.selection import SelectionConfig
from stages.lib.semantic_metrics import SemanticResult, points_protocol
from stages.lib.store import StoreError, read_store
from stages.methods import register
from stages.methods.openins.association import fuse_language
from stages.methods.openins.query import CodebookSearchPredictions, Query


@dataclass
class FusionOptions:
    """The temperature of the cross-view fusion (OpenInsGaussian's 10)."""

    fusion_tau: float = 10.0


@dataclass
class LanguageOptions(SemanticEvalConfig, FusionOptions):
    """The codebook search's selection knobs plus the fusion temperature."""


@dataclass
class TextQueryOptions(SelectionConfig, FusionOptions):
    """The selection knobs of the text-query protocols plus the fusion temperature."""


def instance_language(track_id: np.ndarray, mask_features: np.ndarray, num_instances: int, tau: float,
                      device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """([K,E] fused language, masks per instance [K]) from the masks' CLIP features grouped by consistent id."""
    rows = np.nonzero(track_id >= 0)[0]
    return fuse_language(torch.from_numpy(mask_features[rows]).to(device),
                         torch.from_numpy(track_id[rows]).long().to(device), num_instances, tau)


def protosaga_query(gaussians: str, codebook: str, tracks_path: str, features_path: str, fusion_tau: float,
                    device: torch.device) -> Query:
    """The codebook search over Proto-SaGa's instances: the prototype labels of the Gaussians (``codebook``), each
    instance's language fused from the CLIP features (``features``) of the masks the memory bank gave its id
    (``tracks``); errors name the store that does not fit."""
    tracks, features = read_store("tracks", tracks_path), read_store("features", features_path)
    track_id = tracks.load("track_id")
    if features.sizes["M"] != len(track_id):
        raise StoreError(f"{features_path}: {features.sizes['M']} mask features but {tracks_path} labels "
                         f"{len(track_id)} masks")
    inst, _ = load_instance_gaussians(gaussians, codebook, device)
    if int(track_id.max(initial=-1)) + 1 != inst.num_instances:
        raise StoreError(f"{codebook}: {inst.num_instances} instances but {tracks_path} has "
                         f"{int(track_id.max(initial=-1)) + 1} consistent ids")
    language, _ = instance_language(track_id, features.load("mask_features").astype(np.float32), inst.num_instances,
                                    fusion_tau, device)
    return Query(language, torch.from_numpy(features.load("text_features")), list(features.attrs["vocabulary"]),
                 inst.leaf_id, inst)


@register("text_query", "protosaga_language")
def text_query(call: StageCall) -> CodebookSearchPredictions:
    """evaluate_annotations on Proto-SaGa: inputs ``gaussians``, ``codebook`` (prototypes), ``association`` (the
    memory bank's ``tracks`` store) and ``features`` (mask CLIP features); parameters: the selection knobs and
    ``fusion_tau``."""
    cfg = config_from_params(TextQueryOptions, call.options, "protosaga_language text query")
    gaussians, codebook, tracks_path, features_path = call.require("gaussians", "codebook", "association", "features")
    selection = SelectionConfig(**{k: v for k, v in asdict(cfg).items() if k != "fusion_tau"})
    return CodebookSearchPredictions(
        protosaga_query(gaussians, codebook, tracks_path, features_path, cfg.fusion_tau, call.device), selection)


@register("evaluation", "protosaga_language")
def run_language(call: StageCall) -> SemanticResult:
    """evaluate_semantic on Proto-SaGa: inputs ``gaussians``, ``codebook`` (prototypes), ``association`` (the
    memory bank's ``tracks`` store), ``features`` (mask CLIP features) and ``scene``; parameters: the selection
    knobs of the codebook search plus ``fusion_tau`` (the cross-view fusion temperature)."""
    cfg = config_from_params(LanguageOptions, call.options, "protosaga_language evaluation")
    scene_path, gaussians, codebook, tracks_path, features_path = call.require(
        "scene", "gaussians", "codebook", "association", "features")
    device = call.device
    scene = read_store("scene", scene_path)
    query = protosaga_query(gaussians, codebook, tracks_path, features_path, cfg.fusion_tau, device)
    missing = sorted(set(scene.attrs["categories"]) - set(query.vocabulary))
    if missing:
        raise StoreError(f"{features_path}: the vocabulary lacks the scene categories {missing}")
    inst = query.gaussians
    categories = list(scene.attrs["categories"])
    confusions = scannet_3d(query, inst.means.cpu().numpy(), scene.load("points_xyz"), scene.load("points_semantic"),
                            categories)
    test = np.nonzero(scene.load("is_test"))[0]
    gt = np.stack([scene["gt_semantic"][int(v)] for v in test])
    selection = SemanticEvalConfig(**{k: v for k, v in asdict(cfg).items() if k != "fusion_tau"})
    return SemanticResult(confusions, **text_protocols(query, Cameras.from_scene(scene, test, device), gt, categories,
                                                       selection),
                          points_protocol=points_protocol(scene.load("points_xyz"), inst.means.cpu().numpy()))
