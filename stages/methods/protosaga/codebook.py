"""Proto-SaGa's prototypes (Sec. 3.3, Eq. 17-18) and the 3D version of Eq. 19, registered as the ``codebook``
algorithm ``protosaga_prototypes``.

Renders every train view's feature map, pools it over the consistent instances of the associated masks (the
``tracks`` the memory bank wrote), averages per instance over the views that contain it, and labels every Gaussian
with the instance of its most similar prototype. Written as a flat ``codebook`` store (one leaf per consistent
instance: ``fine_centres`` = v(t), ``leaf_id`` = the Gaussian's instance), so the open-vocabulary query and
evaluation read Proto-SaGa's instances as they read OpenInsGaussian's.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from stages.lib.cli import StageCall, config_from_params
from stages.lib.feature_field import ViewCameras, load_feature_gaussians
from stages.lib.instance_metrics import consistent_label_maps
from stages.lib.mask_store import MaskSet, load_masks
from stages.lib.scene import SceneData, load_scene
from stages.lib.store import StoreError, read_store, write_store
from stages.methods import register
from stages.methods.protosaga.prototypes import PrototypeEnsemble, predict_instances, view_prototypes

log = logging.getLogger(__name__)


@dataclass
class PrototypeOptions:
    """tau of Eq. 19, the masks level the tracks label, cameras rendered per batch."""

    tau: float = 10.0
    level: int = 0
    view_batch: int = 8


def consistent_maps(masks: MaskSet, track_id: np.ndarray, views: np.ndarray, level: int) -> np.ndarray:
    """Label maps [len(views),H,W] of consistent ids: each mask's pixels carry its track id (-1 none)."""
    per_view = []
    for v in views:
        rows = masks.rows(int(v), level)
        ids = np.full(int(masks.labels[v, level].max()) + 1, -1, np.int64)
        ids[masks.table["mask_id"][rows]] = track_id[rows]
        per_view.append(ids)
    return consistent_label_maps(masks.labels[views, level], per_view)


def train_view_prototypes(params: dict[str, Tensor], scene: SceneData, labels: np.ndarray, views: np.ndarray,
                          num_instances: int, batch: int, keep_per_view: bool = False
                          ) -> tuple[PrototypeEnsemble, list[tuple[Tensor, Tensor]]]:
    """Eq. 17-18 over the given train views; with ``keep_per_view`` also every view's (v_k [K,D], present [K])."""
    device = params["means"].device
    cams = ViewCameras(scene, device)
    ensemble = PrototypeEnsemble(num_instances, params["features"].shape[1], device)
    per_view = []
    for start in tqdm(range(0, len(views), batch), desc="prototypes", unit="batch", mininterval=5):
        idx = views[start:start + batch]
        with torch.no_grad():
            maps, _ = cams.render(params, params["features"], idx.tolist())
        lab = torch.from_numpy(labels[start:start + batch]).to(device)
        ensemble.add(maps, lab)
        if keep_per_view:
            protos, present = view_prototypes(maps, lab, num_instances)
            per_view.extend(zip(protos, present))
    return ensemble, per_view


def load_association_inputs(call: StageCall) -> tuple[SceneData, dict[str, Tensor], MaskSet, np.ndarray, np.ndarray,
                                                        int]:
    """Scene, Gaussians (on the call's device), masks, track ids, train views and the number of instances."""
    scene_path, gaussians_path, masks_path, tracks_path = call.require("scene", "gaussians", "masks", "tracks")
    scene = load_scene(scene_path)
    params, _ = load_feature_gaussians(gaussians_path, call.device)
    masks = load_masks(masks_path, (scene.num_views, scene.height, scene.width))
    tracks = read_store("tracks", tracks_path)
    track_id = tracks.load("track_id")
    if len(track_id) != masks.num_masks:
        raise StoreError(f"{tracks_path}: {len(track_id)} track ids but {masks_path} lists {masks.num_masks} masks")
    train = np.nonzero(~scene.is_test)[0]
    return scene, params, masks, track_id, train, int(track_id.max()) + 1 if track_id.size else 0


@register("codebook", "protosaga_prototypes")
def run_prototypes(call: StageCall) -> None:
    """v(t) of every consistent instance and the 3D labels; writes the flat ``codebook`` store at ``call.out``."""
    cfg = config_from_params(PrototypeOptions, call.options, "protosaga_prototypes codebook")
    scene, params, masks, track_id, train, k = load_association_inputs(call)
    labels = consistent_maps(masks, track_id, train, cfg.level)
    ensemble, _ = train_view_prototypes(params, scene, labels, train, k, cfg.view_batch)
    prototypes, seen = ensemble.prototypes()
    with torch.no_grad():
        leaf = predict_instances(params["features"], prototypes, seen, cfg.tau)
    leaf_np = leaf.cpu().numpy().astype(np.int32)
    centres = prototypes.cpu().numpy().astype(np.float32)
    log.info("%d prototypes (%d seen); %d of %d Gaussians labelled", k, int(seen.sum()), int((leaf_np >= 0).sum()),
             len(leaf_np))
    with write_store("codebook", call.out, "codebook", call.params, call.inputs) as w:
        w.write("coarse_centres", centres)
        w.write("fine_centres", centres)
        w.write("coarse_id", leaf_np)
        w.write("leaf_id", leaf_np)
        w.attrs.update(k_coarse=k, k_fine=1, algorithm="protosaga_prototypes", tau=cfg.tau,
                       prototype_views=ensemble.views.cpu().tolist())
