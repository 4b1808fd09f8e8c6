"""Proto-SaGa's inference schemes on rendered views, registered as ``instance_inference`` pieces of the
``evaluate_instances`` stage (Sec. 3.3 and the alternatives of Table 4).

- ``protosaga_proto``: Eq. 19, argmax of tau cos(v(t), F(p)) over the prototypes of the ``codebook`` store;
- ``protosaga_proto_3d``: the 3D version: every Gaussian's prototype label (``leaf_id``) composited, a pixel taking the
  label of largest rendered weight where the accumulated opacity reaches 0.5;
- ``protosaga_kmeans``: Table 4's K-means row: k-means over the per-view prototypes v_k(t) with k = the number of
  consistent instances, the centres used as in Eq. 19;
- ``protosaga_hdbscan``: HDBSCAN grouping of the rendered test-view features (the clustering alternative of Sec. 3.3,
  as SAGA / OmniSeg3D infer; ``stages.lib.clustering``), noise left unlabelled.
Each returns label maps [len(views),H,W] (-1 none) of the requested views.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stages.lib.cli import StageCall, config_from_params
from stages.lib.clustering import HDBSCANConfig, cluster_points
from stages.lib.feature_field import ViewCameras, load_feature_gaussians
from stages.lib.kmeans import kmeans
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import read_store
from stages.methods import register
from stages.methods.protosaga.codebook import consistent_maps, load_association_inputs, train_view_prototypes
from stages.methods.protosaga.prototypes import predict_instances

ALPHA_MIN = 0.5


@dataclass
class InferenceOptions:
    """tau of Eq. 19, cameras per render batch, the tracks' masks level (K-means), k-means iterations and seed."""

    tau: float = 10.0
    view_batch: int = 4
    level: int = 0
    kmeans_iters: int = 50
    seed: int = 0


def rendered_features(params: dict[str, Tensor], scene: SceneData, views: np.ndarray, batch: int) -> list[Tensor]:
    """Feature maps [C,H,W,D] of the views, rendered in batches."""
    cams = ViewCameras(scene, params["means"].device)
    with torch.no_grad():
        return [cams.render(params, params["features"], views[s:s + batch].tolist())[0]
                for s in range(0, len(views), batch)]


def classify(params: dict[str, Tensor], scene: SceneData, views: np.ndarray, centres: Tensor, seen: Tensor,
             cfg: InferenceOptions) -> np.ndarray:
    """Eq. 19 with the given class centres on the rendered views."""
    return np.concatenate([predict_instances(maps, centres, seen, cfg.tau).cpu().numpy()
                           for maps in rendered_features(params, scene, views, cfg.view_batch)])


def load_prototypes(call: StageCall) -> tuple[SceneData, dict[str, Tensor], Tensor, Tensor]:
    """Scene, Gaussians and the codebook's prototypes with the instances that have one."""
    scene_path, gaussians_path, codebook_path = call.require("scene", "gaussians", "codebook")
    params, _ = load_feature_gaussians(gaussians_path, call.device)
    cb = read_store("codebook", codebook_path)
    centres = torch.from_numpy(cb.load("fine_centres")).to(call.device)
    seen = torch.as_tensor(cb.attrs.get("prototype_views", [1] * len(centres)), device=call.device) > 0
    return load_scene(scene_path), params, centres, seen


@register("instance_inference", "protosaga_proto")
def proto(call: StageCall, views: np.ndarray) -> np.ndarray:
    cfg = config_from_params(InferenceOptions, call.options, "protosaga_proto")
    scene, params, centres, seen = load_prototypes(call)
    return classify(params, scene, views, centres, seen, cfg)


@register("instance_inference", "protosaga_proto_3d")
def proto_3d(call: StageCall, views: np.ndarray) -> np.ndarray:
    cfg = config_from_params(InferenceOptions, call.options, "protosaga_proto_3d")
    scene, params, centres, _ = load_prototypes(call)
    leaf = torch.from_numpy(read_store("codebook", call.inputs["codebook"]).load("leaf_id")).long().to(call.device)
    onehot = torch.zeros((len(leaf), max(len(centres), 1)), device=call.device)
    onehot[leaf >= 0, leaf[leaf >= 0]] = 1.0
    cams = ViewCameras(scene, call.device)
    out = []
    with torch.no_grad():
        for s in range(0, len(views), cfg.view_batch):
            weights, _ = cams.render(params, onehot, views[s:s + cfg.view_batch].tolist())
            label = weights.argmax(-1)
            out.append(torch.where(weights.sum(-1) >= ALPHA_MIN, label, torch.full_like(label, -1)).cpu().numpy())
    return np.concatenate(out)


@register("instance_inference", "protosaga_kmeans")
def proto_kmeans(call: StageCall, views: np.ndarray) -> np.ndarray:
    cfg = config_from_params(InferenceOptions, call.options, "protosaga_kmeans")
    scene, params, masks, track_id, train, k = load_association_inputs(call)
    labels = consistent_maps(masks, track_id, train, cfg.level)
    _, per_view = train_view_prototypes(params, scene, labels, train, k, cfg.view_batch, keep_per_view=True)
    points = torch.cat([protos[present] for protos, present in per_view])
    centres, _ = kmeans(points, k, cfg.kmeans_iters, cfg.seed)
    return classify(params, scene, views, centres, torch.ones(len(centres), dtype=torch.bool, device=call.device),
                    cfg)


@dataclass
class HDBSCANOptions(HDBSCANConfig):
    """HDBSCAN knobs (``stages.lib.clustering``) and cameras per render batch."""

    view_batch: int = 4


@register("instance_inference", "protosaga_hdbscan")
def feature_hdbscan(call: StageCall, views: np.ndarray) -> np.ndarray:
    cfg = config_from_params(HDBSCANOptions, call.options, "protosaga_hdbscan")
    scene_path, gaussians_path = call.require("scene", "gaussians")
    scene = load_scene(scene_path)
    params, _ = load_feature_gaussians(gaussians_path, call.device)
    maps = torch.cat(rendered_features(params, scene, views, cfg.view_batch))
    hdb = HDBSCANConfig(**{k: v for k, v in vars(cfg).items() if k != "view_batch"})
    return cluster_points(maps.reshape(-1, maps.shape[-1]), hdb).reshape(maps.shape[:-1])
